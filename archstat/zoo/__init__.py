"""archstat's model zoo: AlexNet, VGG, GoogLeNet, ResNet (and small classics), each
faithful to its paper or to the torchvision layout it names. Importing this package
registers every model."""

from archstat.zoo import alexnet, googlenet, lenet, resnet, vgg  # noqa: F401  (registers)
from archstat.zoo.registry import ModelInfo, get_model, get_model_info, list_models, register_model

__all__ = ["ModelInfo", "get_model", "get_model_info", "list_models", "register_model"]
