"""The batch job: scenes in, each opened (imagery), looked at (detect) and committed (store),
one transaction per scene; serially (:mod:`railwatch.batch.job`) or one Dask task per scene
(:mod:`railwatch.batch.cluster`). It wires the stages before it and is wired by the CLI."""
