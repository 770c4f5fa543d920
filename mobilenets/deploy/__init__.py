"""The path from a trained Keras model to a phone: conversion to the deployed graph
(`convert`), a flat graph of standard layers (`flatten`), quantization (`quantization`),
the TFLite export (`export`), and the LiteRT runtime helpers and per-op profile
(`litert`, `profile`)."""

# The export's quantization modes (export.py), here where the command line reads them without TensorFlow.
MODES = ("none", "float16", "dynamic", "int8", "qat")
