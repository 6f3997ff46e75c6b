"""Training the network.

The skorch net, losses, augmentation, callbacks, pseudo-labelling and
checkpoints.
"""
