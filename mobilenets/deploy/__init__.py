"""The path from a trained Keras model to a phone: conversion to the deployed graph
(`convert`), a flat graph of standard layers (`flatten`), quantization (`quantization`),
the TFLite export (`export`), and the LiteRT runtime helpers and per-op profile
(`litert`, `profile`)."""
