"""spark-submit entry of the streaming job: a thin shell over :func:`userstream.stream.job.main`."""

from userstream.stream.job import main

if __name__ == "__main__":
    main()
