"""What several pipeline domains share: writing records into a space (``load``), the API's task ledger (``tasks``),
the code location's Parquet IO manager (``parquet_io``), the loop of a run over many partitions (``batches``),
running a job in this process (``in_process``), the Dagster tag names the domains read and write
(``dagster_tags``), how late a refreshed asset may be (``freshness``) and the Dagster beta features used on
purpose (``beta_features``). A domain imports these from here, never from another domain, so no domain depends
on ingest's internals."""
