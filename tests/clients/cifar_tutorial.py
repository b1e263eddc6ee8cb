"""The "Training a classifier" tutorial (CIFAR-10) of the PyTorch docs, on Fashion-MNIST.

The tutorial reads CIFAR-10 through torchvision; here a small Dataset subclass serves the
Fashion-MNIST arrays with the same per-sample transform, written out by hand. Plain PyTorch
except for the import block, which the test swaps for PyTorch's own (tests/test_clients.py).
"""
# --- imports ---
import minidl as torch
import minidl.functional as F
from minidl import nn, optim
from minidl.utils.data import DataLoader, Dataset
# --- end imports ---

classes = ('T-shirt', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Boot')


def to_normalized_tensor(img):
    """ToTensor then Normalize((0.5,), (0.5,)) on a uint8 HxW image."""
    x = torch.from_numpy(img).float().unsqueeze(0) / 255
    return (x - 0.5) / 0.5


class ArrayImages(Dataset):
    def __init__(self, images, labels, transform=None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        img = self.images[idx]
        if self.transform:
            img = self.transform(img)
        return img, int(self.labels[idx])


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)  # flatten all dimensions except batch
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


def main(train_images, train_labels, test_images, test_labels, max_steps=40, shuffle=True,
         initial_state=None, path='./fashion_net.pth'):
    trainset = ArrayImages(train_images, train_labels, transform=to_normalized_tensor)
    trainloader = DataLoader(trainset, batch_size=16, shuffle=shuffle, num_workers=2)
    testset = ArrayImages(test_images, test_labels, transform=to_normalized_tensor)
    testloader = DataLoader(testset, batch_size=100, shuffle=False, num_workers=2)

    net = Net()
    if initial_state is not None:
        net.load_state_dict(initial_state)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.05, momentum=0.9)

    losses = []
    for epoch in range(1):  # loop over the dataset (once, and `max_steps` cuts it short)
        running_loss = 0.0
        for i, data in enumerate(trainloader, 0):
            if i >= max_steps:
                break
            # get the inputs; data is a list of [inputs, labels]
            inputs, labels = data

            # zero the parameter gradients
            optimizer.zero_grad()

            # forward + backward + optimize
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()

            # print statistics
            running_loss += loss.item()
            losses.append(loss.item())
            if i % 20 == 19:    # print every 20 mini-batches
                print(f'[{epoch + 1}, {i + 1:5d}] loss: {running_loss / 20:.3f}')
                running_loss = 0.0
    print('Finished Training')

    torch.save(net.state_dict(), path)
    net = Net()
    net.load_state_dict(torch.load(path, weights_only=True))

    correct = 0
    total = 0
    # prepare to count predictions for each class
    correct_pred = {classname: 0 for classname in classes}
    total_pred = {classname: 0 for classname in classes}
    # since we're not training, we don't need to calculate the gradients for our outputs
    with torch.no_grad():
        for data in testloader:
            images, labels = data
            # calculate outputs by running images through the network
            outputs = net(images)
            # the class with the highest energy is what we choose as prediction
            _, predicted = torch.max(outputs.data, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
            for label, prediction in zip(labels, predicted):
                if label == prediction:
                    correct_pred[classes[label]] += 1
                total_pred[classes[label]] += 1

    print(f'Accuracy of the network on the {total} test images: {100 * correct // total} %')
    per_class = {name: correct_pred[name] / max(total_pred[name], 1) for name in classes}
    return net, losses, correct / total, per_class
