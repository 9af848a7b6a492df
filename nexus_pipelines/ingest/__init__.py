"""Ingestion: landing zone → raw_docs → chunks → embeddings → space_table."""
