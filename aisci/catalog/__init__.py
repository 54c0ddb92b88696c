"""The pipeline catalog: pipeline metadata, lint, releases, installs, where a pipeline can run, its web pages."""
