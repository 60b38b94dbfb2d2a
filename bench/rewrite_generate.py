#!/usr/bin/env python3
"""Generates the rewrite benchmark's config repository: 10,000 YAML files holding 20,000 image
references, in a mix of the corpus kinds (Kubernetes workloads, Helm values, kustomizations, compose
files, Flux HelmReleases) and their formatting habits (comments, indented sequences, quotes, blank lines,
multi-document files, a few CRLF files, non-ASCII text). Every other file references the shared image
`ghcr.io/acme/shared`, which the benchmark bumps (5,000 references).

Usage: rewrite_generate.py OUTPUT_DIR [FILES]
"""
import os
import random
import sys

SHARED = "ghcr.io/acme/shared"
DIGEST = "sha256:" + "5" * 64


def other(rng, n):
    return f"ghcr.io/acme/svc-{n % 400}", f"{rng.randint(0, 3)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"


def k8s(rng, first, second):
    (i1, t1), (i2, t2) = first, second
    return f"""# Deployment for {i2.rsplit('/', 1)[1]} — généré
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{rng.randint(0, 99999)}
  labels:
    app.kubernetes.io/name: app # the name
spec:
  replicas: {rng.randint(1, 5)}
  template:
    metadata:
      annotations:
        checksum/config: "{rng.getrandbits(64):016x}"
    spec:
      initContainers:
        - name: init
          image: {i1}:{t1}  # renovate: datasource=docker
          command: ["sh", "-c", "echo init"]
      containers:
        - name: main
          image: "{i2}:{t2}"
          args:
            - --port=8080
          resources:
            limits: {{cpu: 500m, memory: 128Mi}}
          env:
            - name: GREETING
              value: |
                hello
                world

---
apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  ports:
  - port: 80
    targetPort: 8080
"""


def helm(rng, first, second):
    (i1, t1), (i2, t2) = first, second
    r1, p1 = i1.split("/", 1)
    return f"""## Default values.
replicaCount: 1

image:
  registry: {r1}
  repository: {p1}
  tag: "{t1}"
  pullPolicy: IfNotPresent

sidecar:
  enabled: true
  image:
    repository: {i2}
    # the tag is pinned by digest too
    tag: {t2}
    digest: ""

podAnnotations: {{}}
tolerations: []
"""


def kustomize(rng, first, second):
    (i1, t1), (i2, t2) = first, second
    return f"""apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
  - service.yaml
images:
  - name: {i1}
    newTag: {t1}
  - name: placeholder
    newName: {i2} # mirrored
    newTag: "{t2}"
"""


def compose(rng, first, second):
    (i1, t1), (i2, t2) = first, second
    return f"""services:
  web:
    image: {i1}:{t1}
    ports:
      - "8080:80"
    environment:
      - MODE=prod

  worker:
    image: '{i2}:{t2}'
    depends_on: [web]
"""


def helmrelease(rng, first, second):
    (i1, t1), (i2, t2) = first, second
    return f"""---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: app
spec:
  interval: 30m
  chart:
    spec:
      chart: app-template
      version: 1.5.1
  values:
    image:
      repository: {i1}
      tag: {t1}@{DIGEST}
    exporter:
      image: {i2}:{t2} # {{"$imagepolicy": "flux-system:exporter"}}
"""


KINDS = [(k8s, 40), (helm, 20), (kustomize, 15), (compose, 15), (helmrelease, 10)]


def main():
    out = sys.argv[1]
    files = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    rng = random.Random(42)
    weighted = [kind for kind, weight in KINDS for _ in range(weight)]
    for n in range(files):
        kind = weighted[n % len(weighted)]
        first = (SHARED, f"1.{rng.randint(0, 9)}.0") if n % 2 == 0 else other(rng, 2 * n)
        text = kind(rng, first, other(rng, 2 * n + 1))
        if n % 100 == 0:
            text = text.replace("\n", "\r\n")
        directory = os.path.join(out, f"team-{n % 50:02d}", f"app-{n:05d}")
        os.makedirs(directory, exist_ok=True)
        name = {k8s: "deployment.yaml", helm: "values.yaml", kustomize: "kustomization.yaml",
                compose: "compose.yaml", helmrelease: "helmrelease.yaml"}[kind]
        with open(os.path.join(directory, name), "w", newline="") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
