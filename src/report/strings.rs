//! The report's own words in its two languages (`--lang en|zh`): the page's titles, headers,
//! labels and captions, and the exported tables' headers, one [`Phrase`] each, so that the
//! page and the exports say the same thing the same way. The notes that explain each column
//! are in [`super::notes`]. Category names come from the taxonomies ([`super::Names`]), not
//! from here.

/// A phrase in English and in Chinese.
pub(super) type Phrase = (&'static str, &'static str);

/// The report's language: picks one side of each [`Phrase`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Words {
    zh: bool,
}

impl Words {
    /// Chinese when `lang` is `zh`, else English.
    pub(super) fn new(lang: &str) -> Words {
        Words { zh: lang == "zh" }
    }

    /// Whether the words are Chinese.
    pub(super) fn zh(self) -> bool {
        self.zh
    }

    /// The phrase in the report's language.
    pub(super) fn get(self, p: Phrase) -> &'static str {
        if self.zh {
            p.1
        } else {
            p.0
        }
    }

    /// [`Words::get`] as an owned string.
    pub(super) fn s(self, p: Phrase) -> String {
        self.get(p).to_string()
    }

    /// A sentiment label's name (`negative` -> 负面); other labels as they are.
    pub(super) fn sentiment(self, label: &str) -> &str {
        match label {
            "negative" => self.get(("negative", "负面")),
            "neutral" => self.get(("neutral", "中性")),
            "positive" => self.get(("positive", "正面")),
            l => l,
        }
    }

    /// An alert's kind (`pain_point`, `topic`, `theme`) as the page names it.
    pub(super) fn kind(self, kind: &str) -> &str {
        match (self.zh, kind) {
            (true, "pain_point") => "痛点",
            (true, "topic") => "话题",
            (true, "theme") => "主题组",
            (_, k) => k,
        }
    }

    /// An alert's metric (`volume`, `negative_share`) as the page names it.
    pub(super) fn metric(self, metric: &str) -> &str {
        match (self.zh, metric) {
            (true, "volume") => "评论量",
            (true, "negative_share") => "负面占比",
            (_, m) => m,
        }
    }

    /// The header of the change column: week over week with weekly periods.
    pub(super) fn change_header(self, period_days: i64) -> &'static str {
        if period_days == 7 {
            self.get(WEEK_OVER_WEEK)
        } else {
            self.get(PERIOD_OVER_PERIOD)
        }
    }

    /// A trend ratio as shown: `2.00x` / `2.00倍`.
    pub(super) fn times(self, ratio: f64) -> String {
        format!("{ratio:.2}{}", self.get(("x", "倍")))
    }
}

/// The rating scale's name as shown (`NPS`, `CES`, else `CSAT`).
pub(super) fn scale_name(scale: &str) -> &'static str {
    match scale {
        "nps" => "NPS",
        "ces" => "CES",
        _ => "CSAT",
    }
}

// Shared by the page and the exported tables.
pub(super) const COMMENTS: Phrase = ("comments", "评论数");
pub(super) const PRIORITY: Phrase = ("priority", "优先级");
pub(super) const WEEK_OVER_WEEK: Phrase = ("week-over-week", "周环比");
pub(super) const PERIOD_OVER_PERIOD: Phrase = ("period-over-period", "环比");
pub(super) const TOP_PAIN_POINTS: Phrase = ("top pain points", "主要痛点");
pub(super) const RATED_COMMENTS: Phrase = ("rated comments", "有评分评论数");
pub(super) const STAGE: Phrase = ("stage", "阶段");
pub(super) const PERIOD: Phrase = ("period", "周期");
pub(super) const KIND: Phrase = ("kind", "类型");
pub(super) const WHAT: Phrase = ("what", "对象");
pub(super) const METRIC: Phrase = ("metric", "指标");
pub(super) const VALUE: Phrase = ("value", "数值");
pub(super) const SAME_EVENT: Phrase = ("same event", "同一事件");
pub(super) const ALERTS: Phrase = ("alerts", "预警");
pub(super) const ALERT_COUNT: Phrase = ("alerts", "预警数");
pub(super) const JOURNEY: Phrase = ("journey", "客户旅程");
pub(super) const PAIN_POINTS: Phrase = ("pain points", "痛点");
pub(super) const PAIN_POINT: Phrase = ("pain point", "痛点");
pub(super) const THEMES: Phrase = ("themes", "主题组");
pub(super) const THEME: Phrase = ("theme", "主题组");
pub(super) const TOPICS: Phrase = ("topics", "话题");
pub(super) const TOPIC: Phrase = ("topic", "话题");
pub(super) const SENTIMENT_OVER_TIME: Phrase = ("sentiment over time", "情感走势");
pub(super) const TREND: Phrase = ("trend", "趋势");
pub(super) const IMPACT: Phrase = ("impact", "影响");
pub(super) const EXAMPLES: Phrase = ("examples", "示例");
pub(super) const SENTIMENT: Phrase = ("sentiment", "情感");

// The page's headers.
pub(super) const NEGATIVE: Phrase = ("negative", "负面占比");
pub(super) const MEAN_SENTIMENT: Phrase = ("mean sentiment", "情感均值");
pub(super) const SHARE: Phrase = ("share", "占比");
pub(super) const VIP_GOLD: Phrase = ("VIP/gold", "VIP/金卡");
pub(super) const EXAMPLES_SEVERE: Phrase = ("examples (most severe first)", "示例（最严重的在前）");
pub(super) const BASELINE: Phrase = ("baseline", "基线");
pub(super) const NO_SPIKES: Phrase = ("No spikes.", "没有异常峰值。");

// The exported tables' headers and sheet titles.
pub(super) const RANK: Phrase = ("rank", "排名");
pub(super) const KEY: Phrase = ("key", "编号");
pub(super) const NAME: Phrase = ("name", "名称");
pub(super) const NEGATIVE_SHARE_01: Phrase = ("negative share (0-1)", "负面占比 (0-1)");
pub(super) const MEAN_SENTIMENT_11: Phrase = ("mean sentiment (-1..1)", "情感均值 (-1..1)");
pub(super) const MEAN_SEVERITY: Phrase = ("mean severity", "平均严重度");
pub(super) const VIP_GOLD_COMMENTS: Phrase = ("VIP/gold comments", "VIP/金卡评论数");
pub(super) const TREND_RATIO: Phrase = ("trend (last / earlier mean)", "趋势 (末期 / 此前均值)");
pub(super) const LAST_PERIOD: Phrase = ("last period", "末期评论数");
pub(super) const PREVIOUS_PERIOD: Phrase = ("previous period", "上期评论数");
pub(super) const CHANGE: Phrase = ("change", "变化");
pub(super) const CHANGE_SHARE: Phrase = ("change (share)", "变化率");
pub(super) const IMPACT_POINTS: Phrase = ("impact (points)", "影响 (分)");
pub(super) const EXAMPLES_MASKED: Phrase = ("examples (masked)", "示例 (已脱敏)");
pub(super) const COMMENTS_TIMED: Phrase = ("comments with a time", "有时间的评论数");
pub(super) const FROM: Phrase = ("from", "起始日期");
pub(super) const TO: Phrase = ("to", "结束日期");
pub(super) const PERIOD_DAYS: Phrase = ("period (days)", "周期 (天)");
pub(super) const STAGE_KEY: Phrase = ("stage key", "阶段编号");
pub(super) const SHARE_01: Phrase = ("share (0-1)", "占比 (0-1)");
pub(super) const SUMMARY: Phrase = ("summary", "概览");
pub(super) const MEASURE: Phrase = ("measure", "指标");
pub(super) const BASELINE_MEAN: Phrase = ("baseline mean", "基线均值");
pub(super) const BASELINE_SD: Phrase = ("baseline sd", "基线标准差");
pub(super) const PERIOD_START: Phrase = ("period start", "周期起始");

// The page's titles, labels and captions.
pub(super) const H_ALERTS: Phrase = ("Alerts", "预警");
pub(super) const H_JOURNEY: Phrase = ("Customer journey", "客户旅程");
pub(super) const H_PAIN_POINTS: Phrase =
    ("Pain points, ranked by priority", "痛点（按优先级排序）");
pub(super) const H_TIMELINE: Phrase = ("Sentiment over time", "情感走势");
pub(super) const H_THEMES: Phrase = ("Themes", "主题组");
pub(super) const H_TOPICS: Phrase = ("Topics", "话题");
pub(super) const H_ASPECTS: Phrase = ("Aspects", "评价对象");
pub(super) const ASPECT: Phrase = ("aspect", "评价对象");
pub(super) const ASPECT_WORDS: Phrase = ("found as (mentions)", "原词 (提及次数)");
pub(super) const MENTIONS: Phrase = ("mentions", "提及次数");
pub(super) const COMMENTS_MENTIONING: Phrase = ("comments mentioning", "提及的评论");
pub(super) const NOT_MENTIONED: Phrase = ("not mentioned (comments)", "未提及的评论");
pub(super) const NET: Phrase = (
    "net (positive - negative) / mentions",
    "净倾向 (正面 - 负面) / 提及",
);
pub(super) const ASPECTS_NOTE: Phrase = (
    "What customers talk about inside each comment (the aspect heads of `score --aspects`): every mention with its own polarity, so one comment can praise the screen and complain about the battery. Words are counted by category (the model's editable aspect_category list); 'not mentioned' counts the run's comments that never name the category. Most negative mentions first.",
    "评论中具体谈到的对象（`score --aspects` 的方面情感模型）：每次提及各有其情感，同一条评论可以夸屏幕、抱怨电池。原词按类别归并（模型中可编辑的 aspect_category 列表）；“未提及”为从未谈到该类别的评论数。按负面提及次数排序。",
);
pub(super) const PAGE_TITLE: Phrase = ("vocmine report", "vocmine 报告");
pub(super) const DOWNLOAD: Phrase = ("Download: ", "下载：");
pub(super) const CSV_AS_SHOWN: Phrase = ("CSV of this table as shown", "按当前显示导出 CSV");
pub(super) const CHANNEL: Phrase = ("channel", "渠道");
pub(super) const PRODUCT: Phrase = ("product", "产品");
pub(super) const TIER: Phrase = ("tier", "客户等级");
pub(super) const ALL: Phrase = ("all", "全部");
pub(super) const NONE_GIVEN: Phrase = ("(none given)", "（未填写）");
pub(super) const OTHER_PRODUCTS: Phrase = ("(other products)", "（其他产品）");
pub(super) const SPIKES_FLAGGED: Phrase = ("spikes flagged", "个异常峰值");
pub(super) const PRIORITY_AXIS: Phrase = (
    "priority (sum of negativity x tier weight)",
    "优先级（负面程度 × 客户等级权重之和）",
);
pub(super) const TIMELINE_AXES: Phrase = (
    "x: period start (month-day); left axis, bars: comments per period; right axis, red line: negative share",
    "横轴：周期起始日（月-日）；左轴（柱）：每期评论数；右轴（红线）：负面占比",
);
pub(super) const JOURNEY_AXES: Phrase = (
    "x: journey stage, in journey order; y: mean sentiment (-1 all negative, +1 all positive)",
    "横轴：客户旅程阶段（按旅程顺序）；纵轴：情感均值（-1 全部负面，+1 全部正面）",
);
pub(super) const THEMES_NOTE: Phrase = (
    "Themes group topics whose subjects lie close together (average linkage of the topics' centroids); each topic is in one theme, and the topics table below lists them one by one.",
    "主题组把内容相近的话题归为一组（按各话题中心的平均连接聚类）；每个话题只属于一个主题组，下方的话题表逐一列出各话题。",
);

/// The page's heading: comments and dates.
pub(super) fn heading(w: Words, comments: u64, from: &str, to: &str) -> String {
    if w.zh() {
        format!("客户之声：{comments} 条评论，{from} 至 {to}")
    } else {
        format!("Voice of the customer: {comments} comments, {from} to {to}")
    }
}

/// The rating card's caption: `N rated comments`.
pub(super) fn rated_caption(w: Words, n: u64) -> String {
    if w.zh() {
        format!("{n} 条有评分评论")
    } else {
        format!("{n} rated comments")
    }
}

/// A timeline column's tooltip: period, comments, negative share.
pub(super) fn period_tooltip(w: Words, period: &str, count: u64, negative: &str) -> String {
    if w.zh() {
        format!("{period}：{count} 条评论，负面 {negative}")
    } else {
        format!("{period}: {count} comments, {negative} negative")
    }
}

/// A theme's name: its label and the topics it groups.
pub(super) fn theme_name(w: Words, label: &str, topics: &[String]) -> String {
    if w.zh() {
        format!("{label}（话题 {}）", topics.join("、"))
    } else {
        format!("{label} (topics {})", topics.join(", "))
    }
}

/// What the page says when the run has no topics (HTML).
pub(super) fn no_topics(w: Words) -> &'static str {
    w.get((
        "<p>No topics yet: run <code>vocmine topics RUN</code>.</p>",
        "<p>还没有话题：请先运行 <code>vocmine topics RUN</code>。</p>",
    ))
}

/// The notice shown when Chinese would be drawn as empty boxes (HTML).
pub(super) fn font_warning(w: Words) -> &'static str {
    w.get((
        "<p id=\"font-warning\">The page's embedded Chinese font did not load and no font with Chinese characters was found on this machine, so Chinese text may show as empty boxes. Install one (e.g. Noto Sans CJK: <code>fonts-noto-cjk</code>), or make the report with <code>--lang en</code> for English category names.</p>",
        "<p id=\"font-warning\">本页内嵌的中文字体未能加载，本机也没有可显示中文的字体，中文可能显示为空白方框。请安装中文字体（如 <code>fonts-noto-cjk</code>），或用 <code>--lang en</code> 生成英文报告。</p>",
    ))
}

/// The line that names the page's fonts (HTML; `family` and `stack` already escaped).
pub(super) fn fonts_line(w: Words, family: &str, stack: &str) -> String {
    if w.zh() {
        format!("<p class=\"help\">字体：先用 <code>{family}</code>，再用系统字体 <code>{stack}</code>。本页内嵌文泉驿微米黑（<code>WenQuanYi Micro Hei</code>，<code>Apache-2.0</code> 许可），只保留页面用到的字符。</p>")
    } else {
        format!("<p class=\"help\">Fonts: {family}, then {stack}. The page embeds WenQuanYi Micro Hei (Apache-2.0), cut to the characters it shows.</p>")
    }
}
