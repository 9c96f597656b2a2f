# syntax=docker/dockerfile:1
# One Dockerfile, two images:
#   docker build --target controller -t ghcr.io/heraldlb/herald-controller:TAG .
#   docker build --target speaker    -t ghcr.io/heraldlb/herald-speaker:TAG .
# Build with BuildKit (the default builder since Docker 23) or Buildah:
# both keep the security.capability extended attribute across
# `COPY --from`, which the speaker image relies on (check with
# `getcap /herald-speaker` in the build stage, or `getpcaps` at run time).
# No container engine runs in CI, so this file is reviewed, not built.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-trixie AS build
ARG TARGETOS TARGETARCH
ARG VERSION=dev
WORKDIR /src
# libcap2-bin provides setcap.
RUN apt-get update && apt-get install -y --no-install-recommends libcap2-bin \
	&& rm -rf /var/lib/apt/lists/*
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY cmd/ cmd/
COPY internal/ internal/
# Static binaries: no libc in the runtime image, nothing from the build
# machine's paths in them.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
	-ldflags "-s -w -X github.com/heraldlb/herald/internal/version.Version=${VERSION}" \
	-o /out/ ./cmd/herald-controller ./cmd/herald-speaker
# The speaker runs as a non-root user, and a non-root process gets no
# capabilities from the container runtime's ambient set: Kubernetes'
# `capabilities.add` only puts NET_RAW/NET_ADMIN into the bounding set. So
# the binary itself carries them as file capabilities, which the kernel
# grants on exec (within the bounding set, and only without no_new_privs,
# so the speaker's securityContext keeps allowPrivilegeEscalation: true).
# +ep: permitted and effective from the first instruction; nothing else.
RUN setcap cap_net_raw,cap_net_admin+ep /out/herald-speaker \
	&& setcap -v cap_net_raw,cap_net_admin+ep /out/herald-speaker

# distroless/static:nonroot has no shell, no package manager, and runs as
# uid/gid 65532.
FROM gcr.io/distroless/static-debian12:nonroot AS controller
COPY --from=build /out/herald-controller /herald-controller
USER 65532:65532
ENTRYPOINT ["/herald-controller"]

FROM gcr.io/distroless/static-debian12:nonroot AS speaker
COPY --from=build /out/herald-speaker /herald-speaker
USER 65532:65532
ENTRYPOINT ["/herald-speaker"]
