"""Dataset sources (CIFAR-10, digits, image folders) and the canonical data.h5 store."""
