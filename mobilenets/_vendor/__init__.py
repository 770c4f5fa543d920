"""Third-party files kept as they came (see README.md here): they import nothing of ours."""
