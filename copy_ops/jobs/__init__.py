"""Jobs: many blobs copied under one deadline, each an ordinary operation marked with its job.

* :mod:`~copy_ops.jobs.model`: the job record and its request (pure);
* :mod:`~copy_ops.jobs.request`: a job request body, checked (pure);
* :mod:`~copy_ops.jobs.progress`: a job's decisions: item ids and names, its state from counts (pure);
* :mod:`~copy_ops.jobs.phases`: a job's phases and the one table of its moves (pure);
* :mod:`~copy_ops.jobs.moves`: each move of a job, its record's change with its history line (pure);
* :mod:`~copy_ops.jobs.records`: job records, counts from the blob index, the report;
* :mod:`~copy_ops.jobs.listing`: a page of the source listed and handed out in batches (or a manifest chunk started);
* :mod:`~copy_ops.jobs.item_starts`: a batch's or chunk's items started, so many at once;
* :mod:`~copy_ops.jobs.settle`: a job checked: stalls, aborts, its end and report;
* :mod:`~copy_ops.jobs.job_service`: the one service the adapters use.
"""
