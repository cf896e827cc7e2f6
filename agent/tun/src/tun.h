#ifndef PH_TUN_H
#define PH_TUN_H
#include <node_api.h>
#include <stdint.h>

#include "io_handle.h"
// Defines the native `Tun` class: new Tun(name) opens /dev/net/tun and attaches/creates NAME.
napi_value ph_tun_define(napi_env env);
// Writes count packets (slab + offsets[i], lengths[i]), one write() each, counting failures;
// returns how many were written. Not bounds-checked: the caller owns the layout.
uint32_t ph_tun_write_packets(ph_io *io, uint8_t *slab, const uint32_t *offsets, const uint32_t *lengths,
                              uint32_t count);
#endif
