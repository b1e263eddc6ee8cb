"""An MNIST example in the style of pytorch/examples (mnist/main.py), run on Fashion-MNIST.

Plain PyTorch except for the import block, which the test swaps for PyTorch's own to run the very
same program under both frameworks (tests/test_clients.py).
"""
# --- imports ---
import minidl as torch
import minidl.functional as F
from minidl import nn, optim
from minidl.optim.lr_scheduler import StepLR
from minidl.utils.data import DataLoader, TensorDataset
# --- end imports ---


class Net(nn.Module):
    def __init__(self, dropout=0.25):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(2 * dropout)
        self.fc1 = nn.Linear(16 * 12 * 12, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def train(model, device, train_loader, optimizer, epoch, log_interval=10, max_steps=None):
    model.train()
    losses = []
    for batch_idx, (data, target) in enumerate(train_loader):
        if max_steps is not None and batch_idx >= max_steps:
            break
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if batch_idx % log_interval == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))
    return losses


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction='sum').item()  # sum up batch loss
            pred = output.argmax(dim=1, keepdim=True)  # get the index of the max log-probability
            correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)
    print('\nTest set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)\n'.format(
        test_loss, correct, len(test_loader.dataset), 100. * correct / len(test_loader.dataset)))
    return test_loss, correct / len(test_loader.dataset)


def make_loaders(train_images, train_labels, test_images, test_labels, batch_size=64, shuffle=True):
    """Images as float32 (N, 1, 28, 28) in [0, 1]; normalised with the dataset's mean and std."""
    mean, std = 0.2860, 0.3530
    train_x = (torch.from_numpy(train_images) - mean) / std
    test_x = (torch.from_numpy(test_images) - mean) / std
    train_set = TensorDataset(train_x, torch.from_numpy(train_labels))
    test_set = TensorDataset(test_x, torch.from_numpy(test_labels))
    train_kwargs = {'batch_size': batch_size, 'shuffle': shuffle}
    test_kwargs = {'batch_size': 1000}
    return DataLoader(train_set, **train_kwargs), DataLoader(test_set, **test_kwargs)


def main(data, epochs=1, max_steps=None, lr=1.0, gamma=0.7, dropout=0.25, shuffle=True, seed=1,
         initial_state=None):
    torch.manual_seed(seed)
    use_cuda = torch.cuda.is_available() and False  # the comparison runs on the CPU
    device = torch.device("cuda" if use_cuda else "cpu")
    train_loader, test_loader = make_loaders(*data, shuffle=shuffle)

    model = Net(dropout).to(device)
    if initial_state is not None:
        model.load_state_dict(initial_state)
    optimizer = optim.Adadelta(model.parameters(), lr=lr)

    scheduler = StepLR(optimizer, step_size=1, gamma=gamma)
    losses = []
    for epoch in range(1, epochs + 1):
        losses += train(model, device, train_loader, optimizer, epoch, max_steps=max_steps)
        test_loss, accuracy = test(model, device, test_loader)
        scheduler.step()

    torch.save(model.state_dict(), "mnist_cnn.pt")
    return model, losses, test_loss, accuracy
