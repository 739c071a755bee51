#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/fuzz_virtio_pci.c into fuzz/corpus/virtio_pci/.

Each seed is a sequence of the harness's operations (see op() there; the
encoding below must follow it): driver init sequences in the order of the
virtio spec (3.1.1: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK,
queue setup, DRIVER_OK) with MSI-X enabled, then requests served, on the
rng and on the blk, so that the fuzzer starts from running devices and
mutates from there.
    fuzz/gen_virtio_pci_corpus.py [DIR]
"""
import os
import struct
import sys

# Operation codes (the harness's enum).
(CFG_WRITE, CFG_READ, PORT, BAR, MMIO, COMMON, STATUS, MSIX_ENTRY, MSIX_CTRL, POKE, SERVE,
 NOTIFY, FAIL, SELECT) = range(14)

# Indices into the harness's common_fields[].
(F_DFSELECT, F_DF, F_GFSELECT, F_GF, F_MSIX_CONFIG, F_NUMQ, F_STATUS, F_GENERATION, F_QSELECT,
 F_QSIZE, F_QMSIX, F_QENABLE, F_QNOTIFY_OFF, F_QDESC, F_QDRIVER, F_QDEVICE, F_QDESC_LO,
 F_QDESC_HI) = range(18)

# BAR 0 layout (what the device's capabilities say; the harness reads them).
ISR, DEVICE_CFG, NOTIFY_AT, MSIX_TABLE, MSIX_PBA = 0x1000, 0x2000, 0x3000, 0x4000, 0x5000
# Where nestvm places the BARs: the rng (slot 1), then the blk (slot 2).
BAR0, BLK_BAR0 = 0xc0000000, 0xc0008000
ACK, DRIVER, DRIVER_OK, FEATURES_OK = 1, 2, 4, 8
F_INDIRECT, F_EVENT_IDX = 1 << 28, 1 << 29
VERSION_1_HI = 1  # bit 32, in the high word
WRITE = 0x80
W1, W2, W4, W8 = 0, 1, 2, 3

# Each device's ring and buffers in guest RAM: the rng's from 0, the blk's
# from 0x8000.
DESC, AVAIL, USED, BUF = 0x1000, 0x2000, 0x3000, 0x4000
BLK_RING = 0x8000
QSIZE = 16
VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH = 0, 1, 4
NEXT, WRITABLE, INDIRECT = 1, 2, 4


class Seq:
    def __init__(self):
        self.b = bytearray()
        self.base, self.ring = BAR0, 0  # the selected device's

    def select(self, dev):
        self.base, self.ring = (BAR0, 0) if dev == 0 else (BLK_BAR0, BLK_RING)
        return self.op(SELECT, "B", dev)

    def op(self, code, fmt="", *args):
        self.b += bytes([code]) + struct.pack("<" + fmt, *args)
        return self

    def cfg_write(self, reg, width, value, sel=0):
        return self.op(CFG_WRITE, "BBBI", sel, reg, width, value)

    def cfg_read(self, reg, width, sel=0):
        return self.op(CFG_READ, "BBB", sel, reg, width)

    def port(self, off, flags, value=0):
        return self.op(PORT, "BBI", off, flags, value)

    def bar(self, lo=None, hi=0, cmd=6):
        return self.op(BAR, "IIH", self.base if lo is None else lo, hi, cmd)

    def mmio_read(self, off, width):
        return self.op(MMIO, "HBQ", off, width, 0)

    def mmio_write(self, off, width, value):
        return self.op(MMIO, "HBQ", off, WRITE | width, value)

    def common(self, field, value):
        return self.op(COMMON, "BQ", field, value)

    def status(self, value):
        return self.op(STATUS, "B", value)

    def msix_entry(self, i, addr, data, masked):
        return self.op(MSIX_ENTRY, "BIIII", i, addr & 0xffffffff, addr >> 32, data, masked)

    def msix_ctrl(self, v):
        return self.op(MSIX_CTRL, "B", v)

    def poke(self, addr, data):
        assert len(data) < 256
        self.op(POKE, "HB", addr, len(data))
        self.b += data
        return self

    def serve(self, q=0):
        return self.op(SERVE, "B", q)

    def notify(self, q=0):
        return self.op(NOTIFY, "B", q)

    def fail(self, on):
        return self.op(FAIL, "B", on)

    # --- a driver's steps ---------------------------------------------

    def features(self, lo, hi):
        self.common(F_DFSELECT, 0).mmio_read(0x04, W4)
        self.common(F_DFSELECT, 1).mmio_read(0x04, W4)
        self.common(F_GFSELECT, 0).common(F_GF, lo)
        return self.common(F_GFSELECT, 1).common(F_GF, hi)

    def queue(self, vector=1, size=QSIZE, split=False):
        self.common(F_QSELECT, 0).mmio_read(0x18, W2)
        self.common(F_QSIZE, size)
        if split:  # 32-bit halves, as some drivers write
            self.common(F_QDESC_LO, self.ring + DESC).common(F_QDESC_HI, 0)
        else:
            self.common(F_QDESC, self.ring + DESC)
        self.common(F_QDRIVER, self.ring + AVAIL).common(F_QDEVICE, self.ring + USED)
        self.common(F_QMSIX, vector).mmio_read(0x1a, W2)
        self.common(F_QENABLE, 1)
        return self.mmio_read(0x1e, W2)

    def init(self, masked=0, features_lo=0, vector=1, split=False, bar=None):
        self.bar(lo=bar)
        data = 0x40 if self.ring == 0 else 0x50
        self.msix_entry(0, 0xfee00000, data, masked)
        self.msix_entry(1, 0xfee01000, data + 1, masked)
        self.msix_ctrl(0x80)
        self.status(0).status(ACK).status(ACK | DRIVER)
        self.features(features_lo, VERSION_1_HI)
        self.status(ACK | DRIVER | FEATURES_OK).mmio_read(0x14, W1)
        self.common(F_MSIX_CONFIG, 0)
        self.queue(vector=vector, split=split)
        return self.status(ACK | DRIVER | FEATURES_OK | DRIVER_OK)

    def desc(self, i, addr, length, flags, nxt=0):
        return self.poke(self.ring + DESC + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def offer(self, head, avail_idx):
        avail = self.ring + AVAIL
        self.poke(avail + 4 + 2 * ((avail_idx - 1) % QSIZE), struct.pack("<H", head))
        self.poke(avail, struct.pack("<HH", 0, avail_idx))
        return self.notify(0).serve(0)

    def request(self, head, avail_idx, length=64, flags=WRITABLE, addr=None):
        addr = self.ring + BUF + 0x100 * head if addr is None else addr
        return self.desc(head, addr, length, flags).offer(head, avail_idx)

    def blk_request(self, head, avail_idx, kind, sector, data=b""):
        """A header, a 512-byte data buffer and a status byte, in 3 descriptors."""
        hdr, buf, st = self.ring + BUF + 0x100 * head, self.ring + BUF + 0x1000, self.ring + 0x7000
        self.poke(hdr, struct.pack("<IIQ", kind, 0, sector))
        if data:
            self.poke(buf, data)
        if kind == VIRTIO_BLK_T_FLUSH:
            self.desc(head, hdr, 16, NEXT, head + 2)
        else:
            self.desc(head, hdr, 16, NEXT, head + 1)
            self.desc(head + 1, buf, 512, NEXT | (WRITABLE if kind == VIRTIO_BLK_T_IN else 0),
                      head + 2)
        self.desc(head + 2, st, 1, WRITABLE)
        return self.offer(head, avail_idx)

    def look(self):
        return self.mmio_read(ISR, W1).mmio_read(MSIX_PBA, W8)


def seeds():
    out = {}

    s = Seq().init()
    s.request(0, 1).look().request(1, 2).look()
    out["init-request"] = s

    s = Seq().init(masked=1)
    s.request(0, 1).look()
    s.mmio_write(MSIX_TABLE + 16 + 12, W4, 0).look()  # unmask: the pending one fires
    s.msix_ctrl(0xc0).request(1, 2).look().msix_ctrl(0x80).look()
    out["masked-then-unmasked"] = s

    s = Seq().init(features_lo=F_EVENT_IDX | F_INDIRECT)
    # One indirect descriptor pointing at a table of two writable buffers.
    s.poke(0x6000, struct.pack("<QIHH", 0x7000, 32, 2 | 1, 1) + struct.pack("<QIHH", 0x7100, 32, 2, 0))
    s.poke(AVAIL + 4 + 2 * QSIZE, struct.pack("<H", 0))  # used_event
    s.request(0, 1, length=32, flags=4, addr=0x6000).look()
    # A descriptor that loops on itself: the queue breaks, NEEDS_RESET,
    # the config vector fires.
    s.poke(DESC + 16, struct.pack("<QIHH", BUF, 16, 1 | 2, 1))
    s.poke(AVAIL + 4 + 2, struct.pack("<H", 1)).poke(AVAIL, struct.pack("<HH", 0, 2))
    s.notify(0).serve(0).mmio_read(0x14, W1).look()
    s.status(0).look()
    out["indirect-event-idx-broken"] = s

    s = Seq().init()
    s.request(0, 1)
    s.status(0)
    # Refused: a feature never offered (bit 40), then no VERSION_1.
    s.status(ACK).status(ACK | DRIVER).features(0, VERSION_1_HI | 1 << 8)
    s.status(ACK | DRIVER | FEATURES_OK).mmio_read(0x14, W1)
    s.status(0).status(ACK).status(ACK | DRIVER).features(F_EVENT_IDX, 0)
    s.status(ACK | DRIVER | FEATURES_OK).mmio_read(0x14, W1)
    s.status(0)
    s.poke(AVAIL, struct.pack("<HH", 0, 0)).poke(USED, struct.pack("<HH", 0, 0))
    s.init(split=True)
    # BAR moves: decoding off, elsewhere, on; then while decoding.
    s.bar(lo=BAR0 + 0x100000, cmd=0).bar(lo=BAR0 + 0x100000, cmd=6)
    s.request(0, 1)
    s.fail(1).status(0).init().fail(0)
    s.notify(0).serve(0).look()
    s.bar(lo=0, hi=1, cmd=6).bar()
    out["reset-refuse-move"] = s

    s = Seq().select(1).init()
    for off in range(0, 0x3c, 4):  # virtio_blk_config
        s.mmio_read(DEVICE_CFG + off, W4)
    s.mmio_read(DEVICE_CFG, W8).mmio_read(DEVICE_CFG + 0x14, W1)
    s.blk_request(0, 1, VIRTIO_BLK_T_OUT, 1, bytes(range(1, 200)))
    s.blk_request(3, 2, VIRTIO_BLK_T_IN, 1).look()
    s.blk_request(6, 3, VIRTIO_BLK_T_IN, 1 << 40).look()  # past the end: IOERR
    s.status(0).init(features_lo=1 << 9)  # FLUSH
    s.blk_request(0, 1, VIRTIO_BLK_T_FLUSH, 0).look()
    out["blk-config-read-write-flush"] = s

    # Both devices running; then the guest makes their BARs overlap (the
    # blk's notify register collides with the rng's), and moves it back.
    s = Seq().init().request(0, 1)
    s.select(1).init().blk_request(0, 1, VIRTIO_BLK_T_IN, 0)
    s.bar(lo=BAR0).notify(0).serve(0).select(0).notify(0).serve(0).look()
    s.select(1).status(0).init(bar=BAR0).blk_request(3, 1, VIRTIO_BLK_T_IN, 0)
    s.bar(lo=BLK_BAR0).notify(0).serve(0).status(0).init().look()
    out["two-devices-overlap"] = s

    s = Seq()
    for reg in range(0, 256, 4):
        s.cfg_read(reg, W4)
    for sel in (0xe0, 0xe2, 0xf9, 0xff):
        s.cfg_read(0, W4, sel=sel)
    s.cfg_write(0x10, W4, 0xffffffff).cfg_read(0x10, W4)
    s.cfg_write(0x14, W4, 0xffffffff).cfg_read(0x14, W4)
    s.cfg_write(0x10, W4, BAR0).cfg_write(0x14, W4, 0).cfg_write(0x04, W2, 6)
    s.cfg_write(0x3c, W1, 11).cfg_write(0x43, W1, 0xc0).cfg_write(0x40, W4, 0x80000000)
    s.port(0, WRITE | W4, 0x80000800).port(4, W4).port(6, W2).port(7, W1).port(1, W1)
    s.port(4, WRITE | W8, 0)
    for off in (0x0, 0x8, 0x10, 0x14, 0x16, 0x20, 0x38, ISR, 0x2000, NOTIFY_AT, MSIX_TABLE,
                MSIX_TABLE + 0x1c, MSIX_PBA, 0x7ffc, 0x8000):
        s.mmio_read(off, W4).mmio_read(off, W8)
    out["config-space-walk"] = s
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "virtio_pci")
    os.makedirs(out_dir, exist_ok=True)
    for name, seq in seeds().items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(bytes(seq.b))


if __name__ == "__main__":
    main()
