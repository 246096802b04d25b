FROM python:3.11-slim
RUN useradd --create-home --uid 1000 tollgate
WORKDIR /app
COPY pyproject.toml README.md ./
COPY registry ./registry
COPY migrations ./migrations
RUN pip install --no-cache-dir . && mkdir -p /data && chown tollgate /data
USER tollgate
ENV TOLLGATE_DATA_DIR=/data TOLLGATE_HOST=0.0.0.0 TOLLGATE_PORT=5000
VOLUME /data
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/v2/')"
ENTRYPOINT ["tollgate"]
CMD ["serve"]
