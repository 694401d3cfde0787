"""Every figure of the pipeline."""
