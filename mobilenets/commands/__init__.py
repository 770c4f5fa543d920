"""The command-line programs, one module each; they parse arguments and call the package.

    mobilenets-train      python train.py             commands/train.py
    mobilenets-evaluate   python evaluate.py          commands/evaluate.py
    mobilenets-export     python export_tflite.py     commands/export.py
    mobilenets-predict    top-k classes of images     commands/predict.py
    mobilenets-summary    parameters, multiply-adds   commands/summary.py
    mobilenets-tflite-info  a .tflite's metadata      commands/tflite_info.py
    mobilenets-profile    per-op .tflite latency      commands/profile.py
    mobilenets-plot       training curves             commands/plot.py

Each is also `python -m mobilenets.commands.NAME`. `cli` holds what they share (a quiet TensorFlow
start-up, one-line errors). Importing a command module does not import TensorFlow, so --help is instant.
"""
