//! The CJK font the page embeds, so that Chinese labels render on a machine with no Chinese
//! font: WenQuanYi Micro Hei (Apache-2.0, `data/fonts/`), shipped pre-subset to the common
//! simplified and traditional characters plus Latin (`data/fonts/subset_font.py`) and cut here,
//! at report time, to exactly the characters of the page.
//!
//! The subsetter handles TrueType (`glyf`) fonts: the page's characters are looked up in the
//! `cmap` (formats 4 and 12), their glyphs and the components of composite glyphs are kept and
//! renumbered in their old order (`.notdef` first), and a font is written with `cmap` (3-1 format
//! 4 where it fits, and 3-10 format 12), `glyf`, long `loca`, full `hmtx`, and `head`, `hhea`,
//! `maxp`, `post` (version 3, no glyph names), `name` and `OS/2` as the font has them. Any
//! table it cannot read leaves the page without the embedded font (the system fonts remain).

use std::collections::{BTreeMap, BTreeSet};

/// The family name of the embedded face, first in the page's font stack.
pub const FONT_FAMILY: &str = "vocmine CJK";

/// The shipped font (`data/fonts/wqy-microhei-common.ttf`).
static SHIPPED: &[u8] = include_bytes!("../../data/fonts/wqy-microhei-common.ttf");

/// The `@font-face` rule of the shipped font cut to the characters of `text` (a base64 TrueType
/// data URL), or `None` when the font has none of them or cannot be read.
pub fn font_face(text: &str) -> Option<String> {
    let chars: BTreeSet<char> = text.chars().filter(|c| *c >= ' ').collect();
    let font = subset(SHIPPED, &chars)?;
    Some(format!(
        "@font-face{{font-family:'{FONT_FAMILY}';src:url(data:font/ttf;base64,{}) format('truetype');font-display:block}}",
        base64(&font)
    ))
}

/// Standard base64 with padding.
pub(crate) fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                s.push(A[(n >> shift) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        d.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        d.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The tables of a font file, by tag.
fn tables(font: &[u8]) -> Option<BTreeMap<[u8; 4], &[u8]>> {
    let n = u16_at(font, 4)? as usize;
    let mut t = BTreeMap::new();
    for i in 0..n {
        let rec = 12 + 16 * i;
        let tag: [u8; 4] = font.get(rec..rec + 4)?.try_into().ok()?;
        let off = u32_at(font, rec + 8)? as usize;
        let len = u32_at(font, rec + 12)? as usize;
        t.insert(tag, font.get(off..off.checked_add(len)?)?);
    }
    Some(t)
}

/// The glyph of `c` in a cmap subtable of format 4 or 12 (0: none).
fn lookup(sub: &[u8], c: u32) -> Option<u16> {
    match u16_at(sub, 0)? {
        4 => {
            if c > 0xFFFF {
                return Some(0);
            }
            let seg = u16_at(sub, 6)? as usize / 2;
            let (ends, starts, deltas, ranges) = (14, 16 + 2 * seg, 16 + 4 * seg, 16 + 6 * seg);
            for i in 0..seg {
                if u32::from(u16_at(sub, ends + 2 * i)?) < c {
                    continue;
                }
                let start = u32::from(u16_at(sub, starts + 2 * i)?);
                if start > c {
                    return Some(0);
                }
                let delta = u16_at(sub, deltas + 2 * i)?;
                let ro = u16_at(sub, ranges + 2 * i)? as usize;
                if ro == 0 {
                    return Some((c as u16).wrapping_add(delta));
                }
                let at = ranges + 2 * i + ro + 2 * (c - start) as usize;
                let g = u16_at(sub, at)?;
                return Some(if g == 0 { 0 } else { g.wrapping_add(delta) });
            }
            Some(0)
        }
        12 => {
            let n = u32_at(sub, 12)? as usize;
            let (mut lo, mut hi) = (0usize, n);
            while lo < hi {
                let mid = (lo + hi) / 2;
                let g = 16 + 12 * mid;
                let (start, end) = (u32_at(sub, g)?, u32_at(sub, g + 4)?);
                if c < start {
                    hi = mid;
                } else if c > end {
                    lo = mid + 1;
                } else {
                    return u16::try_from(u32_at(sub, g + 8)? + (c - start)).ok();
                }
            }
            Some(0)
        }
        _ => None,
    }
}

/// The best Unicode subtable of a cmap: 3-10 (format 12), else 3-1 or 0-x (format 4).
fn unicode_subtable(cmap: &[u8]) -> Option<&[u8]> {
    let n = u16_at(cmap, 2)? as usize;
    let mut best: Option<(u8, &[u8])> = None;
    for i in 0..n {
        let rec = 4 + 8 * i;
        let (pid, eid) = (u16_at(cmap, rec)?, u16_at(cmap, rec + 2)?);
        let sub = cmap.get(u32_at(cmap, rec + 4)? as usize..)?;
        let rank = match (pid, eid, u16_at(sub, 0)?) {
            (3, 10, 12) | (0, _, 12) => 2,
            (3, 1, 4) | (0, _, 4) => 1,
            _ => continue,
        };
        if best.is_none_or(|(r, _)| rank > r) {
            best = Some((rank, sub));
        }
    }
    best.map(|b| b.1)
}

/// The glyph `g`'s bytes in `glyf` (empty for an empty glyph).
fn glyph<'a>(glyf: &'a [u8], loca: &[u8], long: bool, g: u16) -> Option<&'a [u8]> {
    let g = g as usize;
    let (a, b) = if long {
        (
            u32_at(loca, 4 * g)? as usize,
            u32_at(loca, 4 * g + 4)? as usize,
        )
    } else {
        (
            2 * u16_at(loca, 2 * g)? as usize,
            2 * u16_at(loca, 2 * g + 2)? as usize,
        )
    };
    glyf.get(a..b.max(a))
}

/// The offsets of a composite glyph's component glyph indices (none for a simple glyph).
fn components(g: &[u8]) -> Option<Vec<usize>> {
    if g.is_empty() || (u16_at(g, 0)? as i16) >= 0 {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    let mut at = 10;
    loop {
        let flags = u16_at(g, at)?;
        u16_at(g, at + 2)?;
        out.push(at + 2);
        at += 4 + if flags & 0x0001 != 0 { 4 } else { 2 };
        at += match flags {
            f if f & 0x0008 != 0 => 2,
            f if f & 0x0040 != 0 => 4,
            f if f & 0x0080 != 0 => 8,
            _ => 0,
        };
        if flags & 0x0020 == 0 {
            return Some(out);
        }
    }
}

fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn set16(v: &mut [u8], at: usize, x: u16) -> Option<()> {
    v.get_mut(at..at + 2)?.copy_from_slice(&x.to_be_bytes());
    Some(())
}

/// `(searchRange, entrySelector, rangeShift)` of `n` entries of `size` bytes.
fn search_fields(n: usize, size: usize) -> (u16, u16, u16) {
    let mut p = 0u32;
    while (2usize << p) <= n {
        p += 1;
    }
    let range = (1usize << p) * size;
    (
        range as u16,
        p as u16,
        (n * size).saturating_sub(range) as u16,
    )
}

/// The new cmap: 3-1 format 4 (when it fits) and 3-10 format 12, runs of consecutive
/// characters with consecutive glyphs as one segment or group.
fn cmap(map: &BTreeMap<u32, u16>) -> Vec<u8> {
    let mut runs: Vec<(u32, u32, u16)> = Vec::new();
    for (&c, &g) in map {
        match runs.last_mut() {
            Some(r) if r.1 + 1 == c && u32::from(r.2) + (c - r.0) == u32::from(g) => r.1 = c,
            _ => runs.push((c, c, g)),
        }
    }
    let mut f12 = Vec::new();
    put16(&mut f12, 12);
    put16(&mut f12, 0);
    put32(&mut f12, 16 + 12 * runs.len() as u32);
    put32(&mut f12, 0);
    put32(&mut f12, runs.len() as u32);
    for &(s, e, g) in &runs {
        put32(&mut f12, s);
        put32(&mut f12, e);
        put32(&mut f12, u32::from(g));
    }
    let mut bmp: Vec<(u16, u16, u16)> = runs
        .iter()
        .filter(|r| r.1 < 0xFFFF)
        .map(|&(s, e, g)| (s as u16, e as u16, g.wrapping_sub(s as u16)))
        .collect();
    bmp.push((0xFFFF, 0xFFFF, 1));
    let len4 = 16 + 8 * bmp.len();
    let mut f4 = Vec::new();
    if len4 <= 0xFFFF {
        let (range, sel, shift) = search_fields(bmp.len(), 2);
        for x in [4, len4 as u16, 0, 2 * bmp.len() as u16, range, sel, shift] {
            put16(&mut f4, x);
        }
        bmp.iter().for_each(|r| put16(&mut f4, r.1));
        put16(&mut f4, 0);
        bmp.iter().for_each(|r| put16(&mut f4, r.0));
        bmp.iter().for_each(|r| put16(&mut f4, r.2));
        bmp.iter().for_each(|_| put16(&mut f4, 0));
    }
    let mut subs: Vec<(u16, u16, Vec<u8>)> = Vec::new();
    if !f4.is_empty() {
        subs.push((3, 1, f4));
    }
    subs.push((3, 10, f12));
    let mut out = Vec::new();
    put16(&mut out, 0);
    put16(&mut out, subs.len() as u16);
    let mut off = 4 + 8 * subs.len();
    for (pid, eid, s) in &subs {
        put16(&mut out, *pid);
        put16(&mut out, *eid);
        put32(&mut out, off as u32);
        off += s.len();
    }
    for (_, _, s) in subs {
        out.extend_from_slice(&s);
    }
    out
}

fn checksum(d: &[u8]) -> u32 {
    d.chunks(4).fold(0u32, |sum, c| {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        sum.wrapping_add(u32::from_be_bytes(w))
    })
}

/// `font` (a TrueType font) cut to the glyphs of `chars` (those it has), or `None` when it
/// has none of them or cannot be read.
pub(crate) fn subset(font: &[u8], chars: &BTreeSet<char>) -> Option<Vec<u8>> {
    let t = tables(font)?;
    let (head, hhea, maxp) = (t.get(b"head")?, t.get(b"hhea")?, t.get(b"maxp")?);
    let (glyf, loca, hmtx) = (t.get(b"glyf")?, t.get(b"loca")?, t.get(b"hmtx")?);
    let sub = unicode_subtable(t.get(b"cmap")?)?;
    let long = u16_at(head, 50)? == 1;
    let num_glyphs = u16_at(maxp, 4)?;
    let num_h = u16_at(hhea, 34)?.clamp(1, num_glyphs.max(1));
    let mut old_map: BTreeMap<u32, u16> = BTreeMap::new();
    for &c in chars {
        let g = lookup(sub, c as u32)?;
        if g != 0 && g < num_glyphs {
            old_map.insert(c as u32, g);
        }
    }
    if old_map.is_empty() {
        return None;
    }
    // The glyphs kept: .notdef, the characters' and, transitively, their components'.
    let mut keep: BTreeSet<u16> = BTreeSet::from([0]);
    let mut todo: Vec<u16> = old_map.values().copied().collect();
    while let Some(g) = todo.pop() {
        if g >= num_glyphs || !keep.insert(g) {
            continue;
        }
        let data = glyph(glyf, loca, long, g)?;
        for at in components(data)? {
            todo.push(u16_at(data, at)?);
        }
    }
    let new_id: BTreeMap<u16, u16> = keep
        .iter()
        .enumerate()
        .map(|(i, &g)| (g, i as u16))
        .collect();
    let (mut new_glyf, mut new_loca, mut new_hmtx) = (Vec::new(), Vec::new(), Vec::new());
    for &g in &keep {
        put32(&mut new_loca, new_glyf.len() as u32);
        let mut data = glyph(glyf, loca, long, g)?.to_vec();
        for at in components(&data)? {
            let old = u16_at(&data, at)?;
            set16(&mut data, at, *new_id.get(&old)?)?;
        }
        new_glyf.extend_from_slice(&data);
        new_glyf.resize(new_glyf.len().next_multiple_of(4), 0);
        let m = g.min(num_h - 1) as usize;
        put16(&mut new_hmtx, u16_at(hmtx, 4 * m)?);
        let lsb = if g < num_h {
            u16_at(hmtx, 4 * g as usize + 2)?
        } else {
            u16_at(hmtx, 4 * num_h as usize + 2 * (g - num_h) as usize)?
        };
        put16(&mut new_hmtx, lsb);
    }
    put32(&mut new_loca, new_glyf.len() as u32);
    let n = keep.len() as u16;
    let map: BTreeMap<u32, u16> = old_map
        .iter()
        .map(|(&c, g)| Some((c, *new_id.get(g)?)))
        .collect::<Option<_>>()?;

    let mut new_head = head.to_vec();
    new_head.get_mut(8..12)?.fill(0);
    set16(&mut new_head, 50, 1)?;
    let mut new_hhea = hhea.to_vec();
    set16(&mut new_hhea, 34, n)?;
    let mut new_maxp = maxp.to_vec();
    set16(&mut new_maxp, 4, n)?;
    let mut post = t.get(b"post")?.get(..32)?.to_vec();
    post.get_mut(..4)?
        .copy_from_slice(&0x0003_0000u32.to_be_bytes());
    let mut out_tables: BTreeMap<[u8; 4], Vec<u8>> = BTreeMap::new();
    out_tables.insert(*b"cmap", cmap(&map));
    out_tables.insert(*b"glyf", new_glyf);
    out_tables.insert(*b"head", new_head);
    out_tables.insert(*b"hhea", new_hhea);
    out_tables.insert(*b"hmtx", new_hmtx);
    out_tables.insert(*b"loca", new_loca);
    out_tables.insert(*b"maxp", new_maxp);
    out_tables.insert(*b"post", post);
    for tag in [b"OS/2", b"name"] {
        if let Some(d) = t.get(tag) {
            out_tables.insert(*tag, d.to_vec());
        }
    }

    let count = out_tables.len();
    let (range, sel, shift) = search_fields(count, 16);
    let mut out = Vec::new();
    put32(&mut out, 0x0001_0000);
    for x in [count as u16, range, sel, shift] {
        put16(&mut out, x);
    }
    let mut off = 12 + 16 * count;
    let mut head_at = 0;
    for (tag, d) in &out_tables {
        out.extend_from_slice(tag);
        put32(&mut out, checksum(d));
        put32(&mut out, off as u32);
        put32(&mut out, d.len() as u32);
        if tag == b"head" {
            head_at = off;
        }
        off += d.len().next_multiple_of(4);
    }
    for d in out_tables.values() {
        out.extend_from_slice(d);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    let adjust = 0xB1B0_AFBAu32.wrapping_sub(checksum(&out));
    out.get_mut(head_at + 8..head_at + 12)?
        .copy_from_slice(&adjust.to_be_bytes());
    Some(out)
}

/// The page's font stack: the embedded face first, then the system fonts.
pub(crate) fn font_stack(system: &str) -> String {
    format!("'{FONT_FAMILY}',{system}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmap_of(font: &[u8]) -> BTreeMap<[u8; 4], &[u8]> {
        tables(font).unwrap()
    }

    #[test]
    fn the_subset_maps_exactly_the_page_characters_to_the_same_outlines() {
        let chars: BTreeSet<char> = "物流配送 太慢了 Delivery +40% “”".chars().collect();
        let sub = subset(SHIPPED, &chars).unwrap();
        assert!(sub.len() < 40_000, "{} bytes", sub.len());
        let (old, new) = (cmap_of(SHIPPED), cmap_of(&sub));
        let glyph_of = |t: &BTreeMap<[u8; 4], &[u8]>, c: char| {
            let g = lookup(unicode_subtable(t[b"cmap"]).unwrap(), c as u32).unwrap();
            let long = u16_at(t[b"head"], 50).unwrap() == 1;
            (g, glyph(t[b"glyf"], t[b"loca"], long, g).unwrap().to_vec())
        };
        for c in chars.iter().filter(|c| **c != ' ') {
            let (og, od) = glyph_of(&old, *c);
            let (ng, nd) = glyph_of(&new, *c);
            assert!(og != 0 && ng != 0, "{c}");
            if components(&od).unwrap().is_empty() {
                // Copied, then padded to 4 bytes.
                assert_eq!(od, nd[..od.len()], "{c}: the outline is copied");
                assert!(nd.len() - od.len() < 4 && nd[od.len()..].iter().all(|&b| b == 0));
            } else {
                assert_eq!(components(&od).unwrap(), components(&nd).unwrap());
            }
        }
        // A character the page does not use is not in the subset; the format 4 table agrees.
        assert_eq!(glyph_of(&new, '中').0, 0);
        assert!(u16_at(new[b"maxp"], 4).unwrap() < 200);
        // The file's checksum adjustment: the whole font sums to 0xB1B0AFBA.
        assert_eq!(checksum(&sub), 0xB1B0_AFBA);
    }

    #[test]
    fn nothing_to_embed_and_broken_fonts_give_none() {
        let latin_only: BTreeSet<char> = ['\u{0378}'].into_iter().collect();
        assert!(subset(SHIPPED, &latin_only).is_none());
        let chars: BTreeSet<char> = "物流".chars().collect();
        for cut in [0, 12, 100, SHIPPED.len() / 2] {
            assert!(subset(&SHIPPED[..cut], &chars).is_none(), "{cut}");
        }
        assert_eq!(base64(b"vocmine"), "dm9jbWluZQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert!(font_face("物流配送").unwrap().contains("font/ttf;base64,"));
    }
}
