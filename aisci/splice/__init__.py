"""SpliceAI splice-effect scores in PyTorch: architecture, weight loading, prediction and variant scoring."""
