//! `report.html`: one self-contained page (inline CSS, SVG and script, no network), with the
//! tables and charts of a [`Report`]: alerts, the journey map (filterable by channel, product
//! and tier in the page), pain points, sentiment over time and topics. Every chart has axes;
//! every table says what its columns mean and links to its CSV file and the workbook
//! (`report_tables/`, `report.xlsx`, [`super::write_tables`]), with a button that makes the CSV
//! from the table in the page (the journey table as filtered). Text is drawn in the embedded
//! CJK font (cut to the page's characters, [`super::font_face`]), then the system fonts.

use super::font::{font_face, font_stack};
use super::tables::{alerts, group_table};
use super::{Example, GroupStats, Report};
use crate::text::escape_html;
use crate::workspace::RunDir;
use std::fmt::Write;

/// The system fonts after the embedded one: system UI fonts, then the common Chinese fonts of
/// macOS, Windows and Linux.
pub const FONT_STACK: &str = "system-ui,-apple-system,'Segoe UI','PingFang SC','Hiragino Sans GB','Microsoft YaHei','Noto Sans CJK SC','Source Han Sans SC','WenQuanYi Micro Hei',sans-serif";

const CSS: &str = "h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
body{margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f4f4f4}td.l,th.l{text-align:left}.neg{color:#b00020}.pos{color:#1b7f3b}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:140px}
.card b{display:block;font-size:20px}.alert{background:#fff3f3}svg text{font-size:11px;fill:#333}
.help{font-size:12px;color:#555;max-width:1000px}.help dt{font-weight:bold;display:inline}.help dd{display:inline;margin:0 12px 0 4px}
q{quotes:'“' '”';display:block;margin:2px 0;max-width:460px;text-align:left}.id{color:#888;font-size:11px}
#font-warning{background:#fff8e1;border:1px solid #e0c060;padding:6px 10px;display:none}
.filters label{margin-right:14px;font-size:13px}.dl{font-size:12px;margin:2px 0 8px}.dl button{font-size:11px}";

/// The download line under a table: its CSV file, the workbook, and (`button`) the CSV made
/// from the table as the page shows it.
fn downloads(stem: &str, button: bool) -> String {
    let mut s = format!(
        "<p class=\"dl\">Download: <a href=\"{}\" download>{stem}.csv</a> · <a href=\"{}\" download>{}</a>",
        RunDir::report_table_href(stem),
        RunDir::report_xlsx_href(),
        RunDir::report_xlsx_href()
    );
    if button {
        let _ = write!(
            s,
            " · <button type=\"button\" data-csv=\"{stem}\">CSV of this table as shown</button>"
        );
    }
    s + "</p>"
}

/// The buttons of [`downloads`]: the table's cells as CSV (UTF-8 with a byte-order mark, a
/// text that would read as a formula prefixed with `'`), saved without a network.
const CSV_JS: &str = r#"(function(){function csv(t){var rows=[];t.querySelectorAll('tr').forEach(function(tr){var r=[];
tr.querySelectorAll('th,td').forEach(function(c){var v=c.innerText.trim();if(/^[=@]/.test(v)||(/^[+-]/.test(v)&&isNaN(parseFloat(v))))v="'"+v;r.push('"'+v.replace(/"/g,'""')+'"');});
rows.push(r.join(','));});return '\ufeff'+rows.join('\r\n')+'\r\n';}
document.querySelectorAll('button[data-csv]').forEach(function(b){b.addEventListener('click',function(){var k=b.getAttribute('data-csv'),t=document.querySelector('table[data-table="'+k+'"]');if(!t)return;
var a=document.createElement('a');a.href=URL.createObjectURL(new Blob([csv(t)],{type:'text/csv;charset=utf-8'}));a.download=k+'.csv';document.body.appendChild(a);a.click();a.remove();});});})();"#;

/// Marks the page with whether Chinese characters get real glyphs (`data-cjk-font`:
/// `present`/`missing`: '中' drawn in the page's font stack against an unassigned code point,
/// always the missing-glyph box) and whether the embedded face loaded (`data-embedded-font`),
/// once the embedded face has loaded; the notice shows when they would be boxes.
const FONT_JS: &str = r#"(function(){function check(){try{var c=document.createElement('canvas');c.width=40;c.height=40;var x=c.getContext('2d');
var ff=getComputedStyle(document.body).fontFamily;function img(t){x.clearRect(0,0,40,40);x.font='24px '+ff;x.fillText(t,4,30);return x.getImageData(0,0,40,40).data.join(',');}
var none=img('中')===img('\u0378'),w=document.getElementById('font-warning'),h=document.documentElement;w.style.display=none?'block':'none';
h.setAttribute('data-cjk-font',none?'missing':'present');h.setAttribute('data-embedded-font',document.fonts&&document.fonts.check('24px "vocmine CJK"','中')?'loaded':'not-loaded');}catch(e){}}
if(document.fonts&&document.fonts.load){document.fonts.load('24px "vocmine CJK"','中').then(check,check);}else{check();}})();"#;

pub(super) fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

pub(super) fn help(items: &[(&str, &str)]) -> String {
    let mut s = String::from("<dl class=\"help\">");
    for (k, v) in items {
        let _ = write!(s, "<dt>{}</dt><dd>{}</dd>", escape_html(k), escape_html(v));
    }
    s + "</dl>"
}

pub(super) fn quotes(ex: &[Example]) -> String {
    ex.iter()
        .map(|e| {
            format!(
                "<q>{}</q><span class=\"id\">{} · {}</span>",
                escape_html(&e.text),
                escape_html(&e.id),
                escape_html(&e.sentiment)
            )
        })
        .collect()
}

/// A horizontal bar chart of (label, value) pairs, with a value axis.
fn bars(items: &[(String, f64)], colour: &str, axis: &str) -> String {
    let max = items.iter().map(|i| i.1).fold(0.0f64, f64::max).max(1e-9);
    let h = 20 * items.len() + 50;
    let base = 20 * items.len() + 8;
    let mut s = format!("<svg width=\"740\" height=\"{h}\" role=\"img\">");
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 5 + 20 * i;
        let w = (v / max * 480.0).max(1.0);
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{}\">{}</text><rect x=\"200\" y=\"{y}\" width=\"{w:.1}\" height=\"14\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{}\">{v:.1}</text>",
            y + 11,
            escape_html(&label.chars().take(28).collect::<String>()),
            205.0 + w,
            y + 11
        );
    }
    let _ = write!(
        s,
        "<line x1=\"200\" y1=\"{base}\" x2=\"680\" y2=\"{base}\" stroke=\"#333\"/><line x1=\"200\" y1=\"0\" x2=\"200\" y2=\"{base}\" stroke=\"#333\"/>"
    );
    for k in 0..=4 {
        let x = 200.0 + 480.0 * k as f64 / 4.0;
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{base}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#333\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{:.1}</text>",
            base + 4,
            base + 16,
            max * k as f64 / 4.0
        );
    }
    let _ = write!(
        s,
        "<text x=\"440\" y=\"{}\" text-anchor=\"middle\">{}</text></svg>",
        base + 32,
        escape_html(axis)
    );
    s
}

/// Columns over time (comment counts, left axis) with the negative share as a line (right
/// axis, 0-100%), dates along the bottom.
fn timeline(r: &Report) -> String {
    let n = r.timeline.len().max(1);
    let max = r.timeline.iter().map(|p| p.count).max().unwrap_or(1).max(1) as f64;
    let w = (840 / n).clamp(8, 60);
    let (left, top, bottom) = (50usize, 20.0, 190.0);
    let width = left + w * n + 60;
    let mut s = format!("<svg width=\"{width}\" height=\"250\" role=\"img\">");
    let right = left + w * n;
    let _ = write!(
        s,
        "<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"#333\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"#333\"/><line x1=\"{right}\" y1=\"{top}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"#b00020\"/>"
    );
    for k in 0..=4 {
        let y = bottom - (bottom - top) * k as f64 / 4.0;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}</text><text x=\"{}\" y=\"{:.1}\">{}%</text><line x1=\"{}\" y1=\"{y:.1}\" x2=\"{left}\" y2=\"{y:.1}\" stroke=\"#333\"/>",
            left - 6,
            y + 4.0,
            max * k as f64 / 4.0,
            right + 4,
            y + 4.0,
            25 * k,
            left - 3
        );
    }
    let mut line = String::new();
    for (i, p) in r.timeline.iter().enumerate() {
        let x = left + i * w;
        let bh = p.count as f64 / max * (bottom - top);
        let _ = write!(
            s,
            "<rect x=\"{x}\" y=\"{:.1}\" width=\"{}\" height=\"{bh:.1}\" fill=\"#8fb3d9\"><title>{}: {} comments, {} negative</title></rect>",
            bottom - bh,
            w.saturating_sub(2).max(1),
            p.period,
            p.count,
            pct(p.negative_share)
        );
        let _ = write!(
            line,
            "{:.1},{:.1} ",
            x as f64 + w as f64 / 2.0,
            bottom - p.negative_share * (bottom - top)
        );
        if i % ((n / 8).max(1)) == 0 {
            let _ = write!(
                s,
                "<text x=\"{x}\" y=\"{}\">{}</text>",
                bottom + 16.0,
                p.period.get(5..).unwrap_or(&p.period)
            );
        }
    }
    let _ = write!(
        s,
        "<polyline points=\"{line}\" fill=\"none\" stroke=\"#b00020\" stroke-width=\"2\"/><text x=\"{left}\" y=\"228\">x: period start (month-day); left axis, bars: comments per period; right axis, red line: negative share</text></svg>"
    );
    s
}

const JOURNEY_W: f64 = 760.0;
const J_LEFT: f64 = 60.0;
const J_RIGHT: f64 = 740.0;
const J_TOP: f64 = 20.0;
const J_BOTTOM: f64 = 200.0;

fn j_x(i: usize, n: usize) -> f64 {
    J_LEFT + (i as f64 + 0.5) * (J_RIGHT - J_LEFT) / n.max(1) as f64
}

fn j_y(v: f64) -> f64 {
    J_TOP + (1.0 - v.clamp(-1.0, 1.0)) / 2.0 * (J_BOTTOM - J_TOP)
}

/// The emotion curve: mean sentiment per stage (y, -1..1) along the stages (x).
fn journey_curve(r: &Report) -> String {
    let n = r.journey.len();
    let mut s = format!(
        "<svg id=\"journey-curve\" width=\"{JOURNEY_W}\" height=\"270\" role=\"img\"><line x1=\"{J_LEFT}\" y1=\"{J_TOP}\" x2=\"{J_LEFT}\" y2=\"{J_BOTTOM}\" stroke=\"#333\"/><line x1=\"{J_LEFT}\" y1=\"{J_BOTTOM}\" x2=\"{J_RIGHT}\" y2=\"{J_BOTTOM}\" stroke=\"#333\"/>"
    );
    for k in 0..=4 {
        let v = -1.0 + 0.5 * k as f64;
        let y = j_y(v);
        let _ = write!(
            s,
            "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"{}\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:+.1}</text>",
            J_LEFT - 3.0,
            if k == 2 { J_RIGHT } else { J_LEFT },
            if k == 2 { "#aaa" } else { "#333" },
            J_LEFT - 6.0,
            y + 4.0
        );
    }
    let mut pts = String::new();
    for (i, st) in r.journey.iter().enumerate() {
        let x = j_x(i, n);
        let y = j_y(st.mean_sentiment);
        if st.volume > 0 {
            let _ = write!(pts, "{x:.1},{y:.1} ");
        }
        let _ = write!(
            s,
            "<circle id=\"jc{i}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"5\" fill=\"#2e6da4\" visibility=\"{}\"/><text id=\"jv{i}\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            if st.volume > 0 { "visible" } else { "hidden" },
            y - 9.0,
            if st.volume > 0 {
                format!("{:+.2}", st.mean_sentiment)
            } else {
                String::new()
            }
        );
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{J_BOTTOM}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#333\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">",
            J_BOTTOM + 4.0,
            J_BOTTOM + 17.0,
        );
        // Long names on two lines, cut at the space nearest the middle.
        let name = &st.name;
        let cut = (name.chars().count() > 12)
            .then(|| {
                name.match_indices(' ')
                    .map(|(i, _)| i)
                    .min_by_key(|&i| (2 * i).abs_diff(name.len()))
            })
            .flatten();
        match cut {
            Some(i) => {
                let _ = write!(
                    s,
                    "<tspan x=\"{x:.1}\">{}</tspan><tspan x=\"{x:.1}\" dy=\"13\">{}</tspan></text>",
                    escape_html(&name[..i]),
                    escape_html(&name[i + 1..])
                );
            }
            None => s += &format!("{}</text>", escape_html(name)),
        }
    }
    let _ = write!(
        s,
        "<polyline id=\"jline\" points=\"{pts}\" fill=\"none\" stroke=\"#2e6da4\" stroke-width=\"2\"/><text x=\"{J_LEFT}\" y=\"250\">x: journey stage, in journey order; y: mean sentiment (-1 all negative, +1 all positive)</text></svg>"
    );
    s
}

fn journey_section(r: &Report) -> String {
    let scale = r.rating.as_ref().map(|x| x.scale.to_uppercase());
    let mut s = String::from("<h2>Customer journey</h2>");
    let select = |id: &str, label: &str, values: &[String]| {
        let mut o = format!("<label>{label} <select id=\"{id}\"><option value=\"-1\">all</option>");
        for (i, v) in values.iter().enumerate() {
            let shown = if v.is_empty() { "(none given)" } else { v };
            let _ = write!(o, "<option value=\"{i}\">{}</option>", escape_html(shown));
        }
        o + "</select></label>"
    };
    let g = &r.segments;
    s += "<div class=\"filters\">";
    s += &select("f-channel", "channel", &g.channels);
    s += &select("f-product", "product", &g.products);
    s += &select("f-tier", "tier", &g.tiers);
    s += "</div>";
    s += &journey_curve(r);
    s += "<table id=\"journey-table\" data-table=\"journey\"><tr><th class=\"l\">stage</th><th>comments</th><th>share</th><th>mean sentiment</th><th>negative</th>";
    if let Some(sc) = &scale {
        let _ = write!(s, "<th>{sc}</th>");
    }
    s += "<th class=\"l\">top pain points</th><th class=\"l\">examples (most severe first)</th></tr>";
    for (i, st) in r.journey.iter().enumerate() {
        let pains: Vec<String> = st
            .top_pain_points
            .iter()
            .map(|p| format!("{} ({})", escape_html(&p.name), p.count))
            .collect();
        let cls = if st.mean_sentiment < 0.0 {
            "neg"
        } else {
            "pos"
        };
        let _ = write!(
            s,
            "<tr><td class=\"l\">{}</td><td id=\"jn{i}\">{}</td><td id=\"js{i}\">{}</td><td id=\"jm{i}\" class=\"{cls}\">{:+.2}</td><td id=\"jg{i}\">{}</td>",
            escape_html(&st.name),
            st.volume,
            pct(st.share),
            st.mean_sentiment,
            pct(st.negative_share)
        );
        if scale.is_some() {
            let _ = write!(
                s,
                "<td id=\"jr{i}\">{}</td>",
                st.rating
                    .as_ref()
                    .map_or("–".to_string(), |r| format!("{:.1} (n={})", r.value, r.n))
            );
        }
        let _ = write!(
            s,
            "<td id=\"jp{i}\" class=\"l\">{}</td><td id=\"je{i}\" class=\"l\">{}</td></tr>",
            pains.join("<br>"),
            quotes(&st.examples)
        );
    }
    s += "</table>";
    s += &downloads("journey", true);
    let rating_help = match r.rating.as_ref().map(|x| x.scale.as_str()) {
        Some("nps") => "NPS of the stage's rated comments: % rating 9-10 minus % rating 0-6 (n: rated comments).",
        Some("ces") => "CES: mean effort score of the stage's rated comments (n: rated comments).",
        Some(_) => "CSAT of the stage's rated comments: % rating 4 or 5 of 5 (n: rated comments).",
        None => "",
    };
    let mut items = vec![
        ("stage", "where in the customer journey the comment's experience happened (journey_stage task); comments of no stage (greetings, tests) are left out."),
        ("comments", "comments in the stage under the filters; share: of all comments under the filters."),
        ("mean sentiment", "mean of P(positive) - P(negative) over the stage's comments, -1 to +1 (the curve above)."),
        ("negative", "share of the stage's comments with negative sentiment."),
        ("top pain points", "the stage's most frequent pain points, with their comments."),
        ("examples", "quoted as scored: personal data masked."),
    ];
    if !rating_help.is_empty() {
        items.insert(4, (scale.as_deref().unwrap_or(""), rating_help));
    }
    s += &help(&items);
    let data = serde_json::json!({
        "scale": r.rating.as_ref().map(|x| x.scale.clone()),
        "seg": g,
        "geom": [J_LEFT, J_RIGHT, J_TOP, J_BOTTOM],
    });
    // `<` only occurs inside JSON strings: as \u003c it cannot end the script element.
    let data = data.to_string().replace('<', "\\u003c");
    let _ = write!(
        s,
        "<script type=\"application/json\" id=\"journey-data\">{data}</script><script>{JOURNEY_JS}</script>"
    );
    s
}

/// Redraws the journey table and curve from the per-segment counts when a filter changes. A
/// link can preselect filters: `report.html#channel=wechat&tier=vip` (values as listed).
const JOURNEY_JS: &str = r#"(function(){
var D=JSON.parse(document.getElementById('journey-data').textContent),S=D.seg,G=D.geom,n=S.stages.length;
function esc(t){return String(t).replace(/[&<>"']/g,function(c){return{'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c];});}
function set(id,h){var e=document.getElementById(id);if(e)e.innerHTML=h;}
function val(id){return parseInt(document.getElementById(id).value,10);}
function draw(){
 var f=[val('f-channel'),val('f-product'),val('f-tier')],st=[],total=0,i,j;
 for(i=0;i<n;i++)st.push({n:0,s:0,g:0,r:[0,0,0,0,0],p:{}});
 S.cells.forEach(function(c){for(j=0;j<3;j++)if(f[j]>=0&&c.at[j+1]!==f[j])return;
  var t=st[c.at[0]];t.n+=c.n;t.s+=c.score_sum;t.g+=c.negative;total+=c.n;
  for(j=0;j<5;j++)t.r[j]+=c.rated[j];for(var k in c.pains)t.p[k]=(t.p[k]||0)+c.pains[k];});
 var pts=[];
 for(i=0;i<n;i++){var t=st[i],m=t.n?t.s/t.n:0,x=G[0]+(i+0.5)*(G[1]-G[0])/n,y=G[2]+(1-Math.max(-1,Math.min(1,m)))/2*(G[3]-G[2]);
  set('jn'+i,t.n);set('js'+i,Math.round(100*t.n/Math.max(total,1))+'%');
  set('jm'+i,t.n?(m>=0?'+':'')+m.toFixed(2):'–');document.getElementById('jm'+i).className=m<0?'neg':'pos';
  set('jg'+i,t.n?Math.round(100*t.g/t.n)+'%':'–');
  var r=t.r,v=null;if(r[0]>0){v=D.scale==='nps'?100*(r[3]-r[4])/r[0]:D.scale==='ces'?r[1]/r[0]:100*r[2]/r[0];}
  set('jr'+i,v===null?'–':v.toFixed(1)+' (n='+r[0]+')');
  var ps=Object.keys(t.p).sort(function(a,b){return t.p[b]-t.p[a]||a-b;}).slice(0,3);
  set('jp'+i,ps.map(function(k){return esc(S.pains[k])+' ('+t.p[k]+')';}).join('<br>'));
  var ex=S.candidates.filter(function(c){if(c.stage!==i)return false;for(j=0;j<3;j++)if(f[j]>=0&&c.seg[j]!==f[j])return false;return true;}).slice(0,3);
  set('je'+i,ex.map(function(c){var e=c.example;return '<q>'+esc(e.text)+'</q><span class="id">'+esc(e.id)+' · '+esc(e.sentiment)+'</span>';}).join(''));
  var c=document.getElementById('jc'+i),l=document.getElementById('jv'+i);
  c.setAttribute('cy',y.toFixed(1));c.setAttribute('visibility',t.n?'visible':'hidden');
  l.setAttribute('y',(y-9).toFixed(1));l.textContent=t.n?(m>=0?'+':'')+m.toFixed(2):'';
  if(t.n)pts.push(x.toFixed(1)+','+y.toFixed(1));}
 document.getElementById('jline').setAttribute('points',pts.join(' '));
 document.getElementById('journey-table').setAttribute('data-filtered',f.join(','));}
['f-channel','f-product','f-tier'].forEach(function(id){document.getElementById(id).addEventListener('change',draw);});
location.hash.slice(1).split('&').forEach(function(kv){var p=kv.split('='),e=document.getElementById('f-'+p[0]);if(!e||p.length<2)return;
 var v=decodeURIComponent(p[1]);for(var i=0;i<e.options.length;i++)if(e.options[i].text===v)e.value=e.options[i].value;});
draw();})();"#;

/// Renders the report as one HTML page.
pub fn to_html(r: &Report) -> String {
    let mut s = String::new();
    s += "<p id=\"font-warning\">The page's embedded Chinese font did not load and no font with Chinese characters was found on this machine, so Chinese text may show as empty boxes. Install one (e.g. Noto Sans CJK: <code>fonts-noto-cjk</code>), or make the report with <code>--lang en</code> for English category names.</p>";
    let _ = write!(
        s,
        "<h1>Voice of the customer: {} comments, {} to {}</h1><div class=\"cards\">",
        r.comments,
        r.from.as_deref().unwrap_or("?"),
        r.to.as_deref().unwrap_or("?")
    );
    for (label, n) in &r.sentiment {
        let _ = write!(
            s,
            "<div class=\"card\">{}<b>{n}</b>{}</div>",
            escape_html(label),
            pct(*n as f64 / r.comments.max(1) as f64)
        );
    }
    if let Some(rt) = &r.rating {
        let _ = write!(
            s,
            "<div class=\"card\">{}<b>{:.1}</b>{} rated comments</div>",
            rt.scale.to_uppercase(),
            rt.value,
            rt.n
        );
    }
    let _ = write!(
        s,
        "<div class=\"card\">alerts<b>{}</b>spikes flagged</div></div>",
        r.alerts.len()
    );
    s += &downloads("summary", false);
    s += "<h2>Alerts</h2>";
    s += &alerts(&r.alerts);
    s += &downloads("alerts", !r.alerts.is_empty());
    if !r.journey.is_empty() {
        s += &journey_section(r);
    }
    let scale = r.rating.as_ref().map(|x| x.scale.as_str());
    s += "<h2>Pain points, ranked by priority</h2>";
    let items: Vec<(String, f64)> = r
        .pain_points
        .iter()
        .map(|g| (g.name.clone(), g.priority))
        .collect();
    s += &bars(
        &items,
        "#d9534f",
        "priority (sum of negativity x tier weight)",
    );
    let days = r.period_days;
    s += &group_table("pain_points", "pain point", &r.pain_points, scale, days);
    s += &downloads("pain_points", true);
    s += "<h2>Sentiment over time</h2>";
    s += &timeline(r);
    s += &downloads("timeline", false);
    if !r.themes.is_empty() {
        s += "<h2>Themes</h2><p class=\"help\">Themes group topics whose subjects lie close together (average linkage of the topics' centroids); each topic is in one theme, and the topics table below lists them one by one.</p>";
        s += &group_table("themes", "theme", &r.themes, scale, days);
        s += &downloads("themes", true);
    }
    s += "<h2>Topics</h2>";
    if r.topics.is_empty() {
        s += "<p>No topics yet: run <code>vocmine topics RUN</code>.</p>";
    } else {
        let mut by_volume: Vec<&GroupStats> = r.topics.iter().collect();
        by_volume.sort_by(|a, b| b.volume.cmp(&a.volume).then(a.key.cmp(&b.key)));
        let items: Vec<(String, f64)> = by_volume
            .iter()
            .take(25)
            .map(|g| (format!("{} {}", g.key, g.name), g.volume as f64))
            .collect();
        s += &bars(&items, "#5b8fc7", "comments");
        s += &group_table("topics", "topic", &r.topics, scale, days);
        s += &downloads("topics", true);
    }
    let _ = write!(
        s,
        "<p class=\"help\">Fonts: {}, then {}. The page embeds WenQuanYi Micro Hei (Apache-2.0), cut to the characters it shows.</p><script>{FONT_JS}{CSV_JS}</script></body></html>",
        super::FONT_FAMILY,
        escape_html(FONT_STACK)
    );
    // The embedded face holds exactly the characters of the page (its script's strings too).
    s.push('\n');
    let face = font_face(&format!("{s}{CSS}")).unwrap_or_default();
    let lang = if r.lang == "zh" { "zh-CN" } else { "en" };
    let stack = font_stack(FONT_STACK);
    format!(
        "<!DOCTYPE html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>vocmine report</title><style>{face}body{{font-family:{stack}}}{CSS}</style></head><body>{s}"
    )
}
