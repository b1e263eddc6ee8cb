"""Training loops in the style of Dive into Deep Learning: an MLP "from scratch" with the
hand-written minibatch SGD of its early chapters, and the `train_ch6` loop of its AlexNet chapter.

Plain PyTorch except for the import block, which the test swaps for PyTorch's own to run the very
same program under both frameworks (tests/test_clients.py).
"""
# --- imports ---
import minidl as torch
from minidl import nn
# --- end imports ---


# ------------------------------------------------------------------ from scratch (chapters 3-5)
def sgd(params, lr, batch_size):
    """Minibatch stochastic gradient descent."""
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()


def init_params(num_inputs=784, num_hiddens=64, num_outputs=10, initial=None):
    if initial is not None:
        return [torch.tensor(a, requires_grad=True) for a in initial]
    W1 = torch.normal(0, 0.01, size=(num_inputs, num_hiddens), requires_grad=True)
    b1 = torch.zeros(num_hiddens, requires_grad=True)
    W2 = torch.normal(0, 0.01, size=(num_hiddens, num_outputs), requires_grad=True)
    b2 = torch.zeros(num_outputs, requires_grad=True)
    return [W1, b1, W2, b2]


def relu(X):
    a = torch.zeros_like(X)
    return torch.max(X, a)


def mlp(X, params):
    W1, b1, W2, b2 = params
    X = X.reshape((-1, W1.shape[0]))
    H = relu(X @ W1 + b1)
    return H @ W2 + b2


def accuracy(y_hat, y):
    """Compute the number of correct predictions."""
    if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(axis=1)
    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


class Accumulator:
    """For accumulating sums over `n` variables."""
    def __init__(self, n):
        self.data = [0.0] * n

    def add(self, *args):
        self.data = [a + float(b) for a, b in zip(self.data, args)]

    def __getitem__(self, idx):
        return self.data[idx]


def train_scratch(train_iter, params, lr=0.1, max_steps=30):
    loss = nn.CrossEntropyLoss(reduction='none')
    losses, metric = [], Accumulator(3)
    for step, (X, y) in enumerate(train_iter):
        if step >= max_steps:
            break
        y_hat = mlp(X, params)
        l = loss(y_hat, y)
        l.sum().backward()
        sgd(params, lr, X.shape[0])
        metric.add(float(l.sum()), accuracy(y_hat, y), y.numel())
        losses.append(float(l.mean()))
    return losses, metric[0] / metric[2], metric[1] / metric[2]


# ------------------------------------------------------------------ the AlexNet chapter's loop (train_ch6)
def small_alexnet(dropout=0.5):
    """The chapter's AlexNet shrunk to 28x28 inputs: the same layer kinds, fewer channels."""
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=5, stride=1, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(16, 32, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2), nn.Flatten(),
        nn.Linear(32 * 6 * 6, 128), nn.ReLU(), nn.Dropout(p=dropout),
        nn.Linear(128, 10))


def evaluate_accuracy_gpu(net, data_iter, device=None):
    """Compute the accuracy for a model on a dataset using a GPU."""
    if isinstance(net, nn.Module):
        net.eval()  # Set the model to evaluation mode
        if not device:
            device = next(iter(net.parameters())).device
    metric = Accumulator(2)
    with torch.no_grad():
        for X, y in data_iter:
            X = X.to(device)
            y = y.to(device)
            metric.add(accuracy(net(X), y), y.numel())
    return metric[0] / metric[1]


def train_ch6(net, train_iter, test_iter, num_epochs, lr, device, max_steps=30, initial_state=None):
    """Train a model with a GPU (the chapter's loop; `max_steps` cuts each epoch short)."""
    def init_weights(m):
        if type(m) == nn.Linear or type(m) == nn.Conv2d:
            nn.init.xavier_uniform_(m.weight)
    net.apply(init_weights)
    if initial_state is not None:
        net.load_state_dict(initial_state)
    print('training on', device)
    net.to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss = nn.CrossEntropyLoss()
    losses = []
    for epoch in range(num_epochs):
        # Sum of training loss, sum of training accuracy, no. of examples
        metric = Accumulator(3)
        net.train()
        for i, (X, y) in enumerate(train_iter):
            if i >= max_steps:
                break
            optimizer.zero_grad()
            X, y = X.to(device), y.to(device)
            y_hat = net(X)
            l = loss(y_hat, y)
            l.backward()
            optimizer.step()
            with torch.no_grad():
                metric.add(l * X.shape[0], accuracy(y_hat, y), X.shape[0])
            losses.append(l.item())
        train_l = metric[0] / metric[2]
        train_acc = metric[1] / metric[2]
        test_acc = evaluate_accuracy_gpu(net, test_iter)
    print(f'loss {train_l:.3f}, train acc {train_acc:.3f}, test acc {test_acc:.3f}')
    return losses, train_acc, test_acc


def load_data_fashion_mnist(images, labels, batch_size, shuffle=True):
    """The arrays as a DataLoader (the book reads them through torchvision)."""
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))
    return torch.utils.data.DataLoader(dataset, batch_size, shuffle=shuffle)


def try_gpu(i=0):
    """Return gpu(i) if exists, otherwise return cpu()."""
    if torch.cuda.device_count() >= i + 1 and False:   # the comparison runs on the CPU
        return torch.device(f'cuda:{i}')
    return torch.device('cpu')
