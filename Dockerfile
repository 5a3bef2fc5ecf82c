# The operator's image: a static executable on a distroless base, non-root, nothing else.
#   docker build -t <registry>/dataworkspace-operator:<version> .
# The build stage runs hack/static-build.sh, which the test suite also runs (make test-image)
# to check the static binary without a container engine.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY tests tests
COPY hack/static-build.sh hack/static-build.sh
RUN hack/static-build.sh release > /tmp/binary && cp "$(cat /tmp/binary)" /dataworkspace-operator \
    && cp "$(dirname "$(cat /tmp/binary)")/dataworkspace-console" /dataworkspace-console

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /dataworkspace-operator /dataworkspace-operator
# The web console: the same image, started with `/dataworkspace-console` as its command.
COPY --from=build /dataworkspace-console /dataworkspace-console
# The distroless nonroot user; the chart sets the same IDs.
USER 65532:65532
ENTRYPOINT ["/dataworkspace-operator"]
CMD ["run"]
