# The production image: gunicorn serves the app, the same image runs Celery workers and beat.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 SPYGLASS_VAR_DIR=/var/lib/spyglass
WORKDIR /app
COPY pyproject.toml README.md ./
COPY webapp webapp
COPY tracking tracking
COPY playground playground
RUN pip install --no-cache-dir '.[s3]'
COPY . .
RUN useradd --system --home /var/lib/spyglass spyglass \
    && mkdir -p /var/lib/spyglass && chown spyglass /var/lib/spyglass
USER spyglass
# collectstatic needs a key to import settings; the real one comes from the environment.
RUN SECRET_KEY=build DEBUG=0 python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "webapp.wsgi", "--bind", "0.0.0.0:8000"]
