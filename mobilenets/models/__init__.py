"""The model zoo: architecture tables -> one builder -> Keras models, named in one registry.

    tables        the papers' architecture tables, as data
    layers        building-block layers (conv-BN-act, learned group conv, SE, ...)
    blocks        the blocks each paper stacks (inverted residual, UIB, IGCV3, ...)
    attention     Mobile MQA (MobileNetV4 hybrids)
    builder       one function turning a table into a model
    zoo           every model name with its table (no TensorFlow)
    registry      `build_model` and `list_models`: every name goes through here
    costs         parameters and multiply-adds, as the papers count them
    condensation  learned group convolution's condensation (CondenseNet)
    pretrained    ImageNet weights from keras.applications
    timm_weights  ImageNet weights from timm's .safetensors checkpoints (MobileNetV4, V3)
"""
