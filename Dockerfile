# The podwire binary (agent, CLI and the demo shop's services), for
# docker-compose.yaml. The BPF objects are committed, so no clang is needed.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/podwire ./cmd/podwire

FROM debian:bookworm-slim
COPY --from=build /out/podwire /usr/local/bin/podwire
ENTRYPOINT ["podwire"]
CMD ["agent", "--listen", "0.0.0.0:7700"]
