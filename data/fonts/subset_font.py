#!/usr/bin/env python3
"""Builds data/fonts/wqy-microhei-common.ttf, the CJK font `vocmine report` embeds (a subset
of it per page), from WenQuanYi Micro Hei (Apache-2.0), font 0 of wqy-microhei.ttc.

    apt-get download fonts-wqy-microhei          # Debian bookworm: 0.2.0-beta-3.1
    dpkg-deb -x fonts-wqy-microhei_*.deb wqy
    python3 -m venv /tmp/fontvenv && /tmp/fontvenv/bin/pip install fonttools==4.69.1
    /tmp/fontvenv/bin/python data/fonts/subset_font.py \
        wqy/usr/share/fonts/truetype/wqy/wqy-microhei.ttc data/fonts/wqy-microhei-common.ttf

Kept: every character GB2312 (common simplified) or Big5 (common traditional) can encode,
plus ASCII, Latin-1, general punctuation, CJK symbols and punctuation, and the full-width
forms. Dropped: hinting and the layout tables (the report subsets the TrueType glyphs and
cmap only, src/report/font.rs).
"""
import sys

from fontTools import subset


def characters():
    keep = set(range(0x20, 0x7F)) | set(range(0xA0, 0x100))
    keep |= set(range(0x2000, 0x2070)) | set(range(0x3000, 0x3040)) | set(range(0xFF00, 0xFFF0))
    for cp in range(0x80, 0x10000):
        ch = chr(cp)
        for codec in ("gb2312", "big5"):
            try:
                ch.encode(codec)
                keep.add(cp)
                break
            except UnicodeEncodeError:
                pass
    return sorted(keep)


def main(src, dst):
    unicodes = ",".join("U+%04X" % cp for cp in characters())
    subset.main([
        src,
        "--font-number=0",
        "--unicodes=" + unicodes,
        "--no-hinting",
        "--layout-features=",
        "--drop-tables+=GSUB,GPOS,GDEF,BASE,JSTF,DSIG,gasp,kern,vhea,vmtx,VORG",
        "--name-IDs=*",
        "--notdef-outline",
        "--output-file=" + dst,
    ])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
