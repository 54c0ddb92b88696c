"""Protein-model AI stage: coding consequences, ESM protein language model scores, the model store."""
