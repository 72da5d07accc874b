//! Headless Chromium for `tests/report.rs`: the page's DOM after its scripts ran, under a
//! chosen fontconfig, and the glyph check of its Chinese labels; the sample's planted personal
//! data.

pub mod visible;

use std::path::Path;
use std::process::Command;

pub fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// The DOM of `url` after its scripts ran, in headless Chromium.
pub fn dump_dom(chromium: &str, profile: &Path, url: &str) -> String {
    dump_dom_with(chromium, profile, url, None)
}

/// [`dump_dom`] with `FONTCONFIG_FILE` set to `fontconfig` (the fonts Chromium may use).
pub fn dump_dom_with(
    chromium: &str,
    profile: &Path,
    url: &str,
    fontconfig: Option<&Path>,
) -> String {
    let mut cmd = Command::new(chromium);
    if let Some(f) = fontconfig {
        cmd.env("FONTCONFIG_FILE", f);
    }
    let o = cmd
        .args([
            "--virtual-time-budget=10000",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The text of the element with `id` in a dumped DOM.
pub fn cell<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let start = at + dom[at..].find('>').unwrap() + 1;
    let end = start + dom[start..].find('<').unwrap();
    &dom[start..end]
}

/// The personal data planted in the sample (its README).
pub const PII: [&str; 8] = [
    "13812345678",
    "13912345678",
    "15800001234",
    "110105199003071239",
    "6222 0212 3456 7894",
    "4111 1111 1111 1111",
    "chen.meiling@example.com",
    "li.na88@example.com",
];

/// A fontconfig file under `dir` whose only font folder holds one Latin font (no Chinese
/// glyphs), so that Chromium has no system font for Chinese whatever the machine has
/// installed; `None` when no Latin font is found to copy.
pub fn latin_only_fontconfig(dir: &Path) -> Option<std::path::PathBuf> {
    let font = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    ]
    .into_iter()
    .map(Path::new)
    .find(|p| p.is_file())?;
    let fonts = dir.join("fonts");
    std::fs::create_dir_all(&fonts).unwrap();
    std::fs::copy(font, fonts.join(font.file_name().unwrap())).unwrap();
    let conf = dir.join("fonts.conf");
    std::fs::write(
        &conf,
        format!(
            "<?xml version=\"1.0\"?>\n<!DOCTYPE fontconfig SYSTEM \"fonts.dtd\">\n<fontconfig><dir>{}</dir><cachedir>{}</cachedir></fontconfig>\n",
            fonts.display(),
            dir.join("cache").display()
        ),
    )
    .unwrap();
    Some(conf)
}

/// Appended to a copy of the page: once the embedded face has loaded, draws each character of
/// `#vm-test-chars` in the page's font stack and marks the page `data-tofu` with those drawn
/// as the missing-glyph box (the same pixels as an unassigned code point, or as the character
/// in a family that does not exist), `none` when every one has a real glyph.
pub const GLYPH_CHECK: &str = r#"<script>(function(){var cs=JSON.parse(document.getElementById('vm-test-chars').textContent);
function run(){var c=document.createElement('canvas');c.width=64;c.height=64;var x=c.getContext('2d'),ff=getComputedStyle(document.body).fontFamily;
function img(t,f){x.clearRect(0,0,64,64);x.font='40px '+f;x.fillText(t,4,48);return x.getImageData(0,0,64,64).data.join(',');}
var box=img('\u0378',ff),bad=cs.filter(function(ch){var a=img(ch,ff);return a===box||a===img(ch,'vm-no-such-family');});
document.documentElement.setAttribute('data-tofu',bad.length?bad.join(''):'none');}
document.fonts.load('40px "vocmine CJK"','物').then(run,run);})();</script>"#;
