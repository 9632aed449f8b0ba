"""Use cases: `tasks.TaskService` serves the API; `runner.TaskRunner` and `reconciler.Reconciler`
the worker."""
