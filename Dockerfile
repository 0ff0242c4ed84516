# facetv-gpu, CPU image (Debian 12). The CUDA variant (NVDEC, TensorRT) comes with the GPU back end.
#   docker build -t facetv .
#   docker run --rm -v "$PWD/videos:/in:ro" -v "$PWD/results:/out" facetv --input /in --output /out
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config clang libclang-dev libavcodec-dev libavformat-dev \
      libavutil-dev libswscale-dev libavfilter-dev libavdevice-dev libswresample-dev libhdf5-dev \
      python3 python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
 && python3 -m pip download --no-deps --only-binary=:all: -d /tmp/ort onnxruntime==1.32.0 \
 && mkdir -p /opt/facetv/lib \
 && python3 -c "import glob,zipfile; z=zipfile.ZipFile(glob.glob('/tmp/ort/*.whl')[0]); n=[m for m in z.namelist() if m.startswith('onnxruntime/capi/libonnxruntime.so.')][0]; open('/opt/facetv/lib/libonnxruntime.so.1.32.0','wb').write(z.read(n))" \
 && FACETV_HOME=/opt/facetv target/release/facetv-gpu models fetch

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libavcodec59 libavformat59 libavutil57 libswscale6 \
      libavfilter8 libavdevice59 libswresample4 libhdf5-103-1 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/facetv /opt/facetv
COPY --from=build /src/target/release/facetv-gpu /usr/local/bin/facetv-gpu
ENV FACETV_HOME=/opt/facetv
ENTRYPOINT ["facetv-gpu"]
