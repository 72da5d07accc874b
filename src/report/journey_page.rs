//! The journey section of `report.html`: the emotion curve (mean sentiment per stage), the
//! filters by channel, product and tier, the journey table with its week-over-week column and
//! notes, and the script that redraws table and curve from the per-segment counts when a
//! filter changes, all in the report's language.

use super::html::{downloads, help, pct, quotes, user};
use super::notes::journey_notes;
use super::strings::{
    scale_name, Words, ALL, CHANNEL, COMMENTS, EXAMPLES_SEVERE, H_JOURNEY, JOURNEY_AXES,
    MEAN_SENTIMENT, NEGATIVE, NONE_GIVEN, OTHER_PRODUCTS, PRODUCT, SHARE, STAGE, TIER,
    TOP_PAIN_POINTS,
};
use super::{PeriodChange, Report};
use crate::text::escape_html;
use std::fmt::Write;

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
fn journey_curve(w: Words, r: &Report) -> String {
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
            "<line x1=\"{x:.1}\" y1=\"{J_BOTTOM}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#333\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" data-user>",
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
        "<polyline id=\"jline\" points=\"{pts}\" fill=\"none\" stroke=\"#2e6da4\" stroke-width=\"2\"/><text x=\"{J_LEFT}\" y=\"250\">{}</text></svg>",
        w.get(JOURNEY_AXES)
    );
    s
}

/// The journey section: filters, curve, table (with its download line and notes) and the
/// script that redraws them.
pub(super) fn journey_section(w: Words, r: &Report) -> String {
    let scale = r.rating.as_ref().map(|x| x.scale.as_str());
    let mut s = format!("<h2>{}</h2>", w.get(H_JOURNEY));
    let other = w.get(OTHER_PRODUCTS);
    let select = |id: &str, label: &str, values: &[String]| {
        let mut o = format!(
            "<label>{label} <select id=\"{id}\"><option value=\"-1\">{}</option>",
            w.get(ALL)
        );
        for (i, v) in values.iter().enumerate() {
            // The values are the comments' own (data), but for the page's two words.
            let (shown, data) = match v.as_str() {
                "" => (w.get(NONE_GIVEN), ""),
                v if v == other => (other, ""),
                v => (v, " data-user"),
            };
            let _ = write!(
                o,
                "<option value=\"{i}\"{data}>{}</option>",
                escape_html(shown)
            );
        }
        o + "</select></label>"
    };
    let g = &r.segments;
    s += "<div class=\"filters\">";
    s += &select("f-channel", w.get(CHANNEL), &g.channels);
    s += &select("f-product", w.get(PRODUCT), &g.products);
    s += &select("f-tier", w.get(TIER), &g.tiers);
    s += "</div>";
    s += &journey_curve(w, r);
    let _ = write!(
        s,
        "<table id=\"journey-table\" data-table=\"journey\"><tr><th class=\"l\">{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th>",
        w.get(STAGE),
        w.get(COMMENTS),
        w.get(SHARE),
        w.get(MEAN_SENTIMENT),
        w.get(NEGATIVE)
    );
    if let Some(sc) = scale {
        let _ = write!(s, "<th>{}</th>", scale_name(sc));
    }
    let _ = write!(
        s,
        "<th>{}</th><th class=\"l\">{}</th><th class=\"l\">{}</th></tr>",
        w.change_header(r.period_days),
        w.get(TOP_PAIN_POINTS),
        w.get(EXAMPLES_SEVERE)
    );
    for (i, st) in r.journey.iter().enumerate() {
        let pains: Vec<String> = st
            .top_pain_points
            .iter()
            .map(|p| format!("{} ({})", user(&p.name), p.count))
            .collect();
        let cls = if st.mean_sentiment < 0.0 {
            "neg"
        } else {
            "pos"
        };
        let _ = write!(
            s,
            "<tr><td class=\"l\">{}</td><td id=\"jn{i}\">{}</td><td id=\"js{i}\">{}</td><td id=\"jm{i}\" class=\"{cls}\">{:+.2}</td><td id=\"jg{i}\">{}</td>",
            user(&st.name),
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
            "<td id=\"jw{i}\">{}</td><td id=\"jp{i}\" class=\"l\">{}</td><td id=\"je{i}\" class=\"l\">{}</td></tr>",
            PeriodChange::text_of(st.change.as_ref()),
            pains.join("<br>"),
            quotes(w, &st.examples)
        );
    }
    s += "</table>";
    s += &downloads(w, "journey", true);
    s += &help(&journey_notes(w, scale, r.period_days));
    let sentiment: std::collections::BTreeMap<&str, &str> = ["negative", "neutral", "positive"]
        .into_iter()
        .map(|l| (l, w.sentiment(l)))
        .collect();
    let data = serde_json::json!({
        "scale": scale,
        "seg": g,
        "geom": [J_LEFT, J_RIGHT, J_TOP, J_BOTTOM],
        "recent": r.timeline.len() >= 2,
        "sentiment": sentiment,
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
// as PeriodChange::to_text: +12 (+40%); the percent rounded half to even, as Rust formats it
function r0(x){var f=Math.floor(x),d=x-f,v=(d>0.5||(d===0.5&&f%2!==0))?f+1:f;return v===0&&x<0?'-0':String(v);}
function chg(a,b){var d=b-a,p=a>0?d/a:null;return (d>0?'+':'')+d+' ('+(p===null?'–':(p>0?'+':'')+r0(p*100)+'%')+')';}
function draw(){
 var f=[val('f-channel'),val('f-product'),val('f-tier')],st=[],total=0,i,j;
 for(i=0;i<n;i++)st.push({n:0,s:0,g:0,r:[0,0,0,0,0],p:{},w:[0,0]});
 S.cells.forEach(function(c){for(j=0;j<3;j++)if(f[j]>=0&&c.at[j+1]!==f[j])return;
  var t=st[c.at[0]];t.n+=c.n;t.s+=c.score_sum;t.g+=c.negative;total+=c.n;t.w[0]+=c.recent[0];t.w[1]+=c.recent[1];
  for(j=0;j<5;j++)t.r[j]+=c.rated[j];for(var k in c.pains)t.p[k]=(t.p[k]||0)+c.pains[k];});
 var pts=[];
 for(i=0;i<n;i++){var t=st[i],m=t.n?t.s/t.n:0,x=G[0]+(i+0.5)*(G[1]-G[0])/n,y=G[2]+(1-Math.max(-1,Math.min(1,m)))/2*(G[3]-G[2]);
  set('jn'+i,t.n);set('js'+i,Math.round(100*t.n/Math.max(total,1))+'%');
  set('jm'+i,t.n?(m>=0?'+':'')+m.toFixed(2):'–');document.getElementById('jm'+i).className=m<0?'neg':'pos';
  set('jg'+i,t.n?Math.round(100*t.g/t.n)+'%':'–');
  var r=t.r,v=null;if(r[0]>0){v=D.scale==='nps'?100*(r[3]-r[4])/r[0]:D.scale==='ces'?r[1]/r[0]:100*r[2]/r[0];}
  set('jr'+i,v===null?'–':v.toFixed(1)+' (n='+r[0]+')');set('jw'+i,D.recent?chg(t.w[0],t.w[1]):'–');
  var ps=Object.keys(t.p).sort(function(a,b){return t.p[b]-t.p[a]||a-b;}).slice(0,3);
  set('jp'+i,ps.map(function(k){return '<span data-user>'+esc(S.pains[k])+'</span> ('+t.p[k]+')';}).join('<br>'));
  var ex=S.candidates.filter(function(c){if(c.stage!==i)return false;for(j=0;j<3;j++)if(f[j]>=0&&c.seg[j]!==f[j])return false;return true;}).slice(0,3);
  set('je'+i,ex.map(function(c){var e=c.example;return '<q>'+esc(e.text)+'</q><span class="id">'+esc(e.id)+' · '+esc(D.sentiment[e.sentiment]||e.sentiment)+'</span>';}).join(''));
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
