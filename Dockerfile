# syntax=docker/dockerfile:1
# Keyturn: a static binary on distroless (no shell, no package manager).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /keyturn ./cmd/keyturn

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /keyturn /keyturn
USER nonroot
EXPOSE 8080
ENTRYPOINT ["/keyturn"]
CMD ["serve", "--config", "/etc/keyturn/keyturn.yaml"]
