# A stand-in for the public postgres image, built on the local Debian image: the same data
# directory, the same POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB variables.
ARG BASE
FROM ${BASE}
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
