"""What several pipeline domains share: writing records into a space (``load``), the API's task ledger
(``tasks``), the code location's Parquet IO manager (``parquet_io``), the loop of a run over many
partitions (``batches``) and running a job in this process (``in_process``). A domain package imports
from here and never from another domain for these, so no domain depends on ingest's internals."""
