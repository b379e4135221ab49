"""The concurrency soak (issue 11): client processes over HTTP against real gunicorn and Celery processes."""
