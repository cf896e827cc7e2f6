{
  "targets": [
    {
      "target_name": "pinhole_native",
      "sources": [
        "src/addon.c",
        "src/errors.c",
        "src/napi_args.c",
        "src/io_handle.c",
        "src/busy_poll.c",
        "src/addr20.c",
        "src/tun.c",
        "src/tun_offload.c",
        "src/udp.c",
        "src/udp_recv.c",
        "src/udp_send.c",
        "src/sockmark.c",
        "src/icmp.c",
        "src/fastpath.c",
        "src/fast_data.c",
        "src/fast_routes.c",
        "src/fast_flows.c",
        "src/peercred.c",
        "src/sodium_calls.c"
      ],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "ldflags": ["-Wl,-z,nodelete"],
      "libraries": ["-lsodium"],
      "configurations": {
        "Release": { "cflags!": ["-O3"], "cflags": ["-O2"] }
      }
    }
  ]
}
