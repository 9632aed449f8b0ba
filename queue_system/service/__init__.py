"""Use cases. `tasks.TaskService` serves the API, `runner.TaskRunner` and `maintenance` the worker."""
