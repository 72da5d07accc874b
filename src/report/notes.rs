//! What each column of the page's tables means, in the report's language: the notes under the
//! tables of groups, of the journey and of alerts, as (column, explanation) pairs.

use super::strings::{
    scale_name, Phrase, Words, BASELINE, COMMENTS, EXAMPLES, IMPACT, MEAN_SENTIMENT, METRIC,
    NEGATIVE, PERIOD, PRIORITY, SAME_EVENT, STAGE, TOP_PAIN_POINTS, TREND, VIP_GOLD,
};

/// A column and what it means, in the report's language.
pub(super) type Note = (&'static str, &'static str);

fn note(w: Words, column: Phrase, text: Phrase) -> Note {
    (w.get(column), w.get(text))
}

const EXAMPLES_NOTE: Phrase = (
    "quoted as scored: personal data masked.",
    "按评分时的文字引用，个人信息已脱敏。",
);

/// The change column's note: the last period against the one before.
fn change_note(w: Words, period_days: i64, of_stage: bool) -> Note {
    let text = match (period_days == 7, of_stage) {
        (true, false) => (
            "comments in the last week minus those in the week before it, and that change as a share of the week before (+12 (+40%): 12 more, 40% up; – : no earlier week, or none the week before for the share).",
            "最近一周的评论数减去前一周的评论数，以及这一变化占前一周的比例（+12 (+40%)：多 12 条，增长 40%；–：没有更早的一周，或前一周为零、无法计算比例）。",
        ),
        (false, false) => (
            "comments in the last period minus those in the period before it, and that change as a share of the period before (+12 (+40%): 12 more, 40% up; – : no earlier period, or none in it for the share).",
            "最近一期的评论数减去上一期的评论数，以及这一变化占上一期的比例（+12 (+40%)：多 12 条，增长 40%；–：没有更早的一期，或上一期为零、无法计算比例）。",
        ),
        (true, true) => (
            "the stage's comments in the last week of the report minus those in the week before it (under the filters), and that change as a share of the week before (+12 (+40%): 12 more, 40% up; – : no earlier week, or none the week before for the share).",
            "报告最近一周该阶段的评论数减去前一周的评论数（按当前筛选），以及这一变化占前一周的比例（+12 (+40%)：多 12 条，增长 40%；–：没有更早的一周，或前一周为零、无法计算比例）。",
        ),
        (false, true) => (
            "the stage's comments in the last period of the report minus those in the period before it (under the filters), and that change as a share of the period before (+12 (+40%): 12 more, 40% up; – : no earlier period, or none in it for the share).",
            "报告最近一期该阶段的评论数减去上一期的评论数（按当前筛选），以及这一变化占上一期的比例（+12 (+40%)：多 12 条，增长 40%；–：没有更早的一期，或上一期为零、无法计算比例）。",
        ),
    };
    (w.change_header(period_days), w.get(text))
}

/// The notes under a table of groups (pain points, themes, topics).
pub(super) fn group_notes(w: Words, rating_scale: Option<&str>, period_days: i64) -> Vec<Note> {
    let mut items = vec![
        note(w, COMMENTS, ("comments in the group.", "该组的评论数。")),
        note(
            w,
            NEGATIVE,
            ("share with negative sentiment.", "情感为负面的评论所占比例。"),
        ),
        note(
            w,
            MEAN_SENTIMENT,
            (
                "mean of P(positive) - P(negative), -1 to +1.",
                "每条评论“正面概率减负面概率”的均值，从 -1 到 +1。",
            ),
        ),
        note(w, PRIORITY, (
            "the ranking key: sum over the group's comments of negativity (how negative, 0-1) x customer-tier weight, so volume, negativity and tier all count.",
            "排序依据：该组每条评论的负面程度（0-1）乘以客户等级权重，再求和；评论量、负面程度和客户等级都会计入。",
        )),
        note(
            w,
            VIP_GOLD,
            (
                "comments from tiers weighted above 1.",
                "来自权重大于 1 的客户等级（如 VIP、金卡）的评论数。",
            ),
        ),
        note(w, TREND, (
            "comments in the last period divided by the mean of the periods before it (2.00x: twice the usual volume; – : no earlier periods).",
            "最近一期的评论数除以此前各期的平均评论数（2.00倍：是平常的两倍；–：没有更早的周期）。",
        )),
        change_note(w, period_days, false),
    ];
    if let Some(sc) = rating_scale {
        items.push((
            scale_name(sc),
            w.get((
                "the rating metric over the group's rated comments (n: rated comments).",
                "该组有评分评论的评分指标（n：有评分的评论数）。",
            )),
        ));
        items.push(note(w, IMPACT, (
            "as Thematic defines it: the overall score minus the score without this group's comments, in points; negative: the group pulls the score down by that much.",
            "按 Thematic 的定义：总体得分减去去掉该组评论后的得分，单位为分；为负表示该组把总分拉低了这么多。",
        )));
    }
    items.push(note(w, EXAMPLES, EXAMPLES_NOTE));
    items
}

/// The notes under the journey table.
pub(super) fn journey_notes(w: Words, rating_scale: Option<&str>, period_days: i64) -> Vec<Note> {
    let rating = match rating_scale {
        Some("nps") => Some((
            "NPS of the stage's rated comments: % rating 9-10 minus % rating 0-6 (n: rated comments).",
            "该阶段有评分评论的 NPS：打 9-10 分的比例减去打 0-6 分的比例（n：有评分的评论数）。",
        )),
        Some("ces") => Some((
            "CES: mean effort score of the stage's rated comments (n: rated comments).",
            "CES：该阶段有评分评论的平均费力度得分（n：有评分的评论数）。",
        )),
        Some(_) => Some((
            "CSAT of the stage's rated comments: % rating 4 or 5 of 5 (n: rated comments).",
            "该阶段有评分评论的 CSAT：打 4 分或 5 分（满分 5 分）的比例（n：有评分的评论数）。",
        )),
        None => None,
    };
    let mut items = vec![
        note(w, STAGE, (
            "where in the customer journey the comment's experience happened (journey_stage task); comments of no stage (greetings, tests) are left out.",
            "评论所说的经历发生在客户旅程的哪个环节（由旅程阶段分类判定）；不属于任何阶段的评论（问候、测试等）不计入。",
        )),
        note(w, COMMENTS, (
            "comments in the stage under the filters; share: of all comments under the filters.",
            "当前筛选下该阶段的评论数；占比：占当前筛选下全部评论的比例。",
        )),
        note(w, MEAN_SENTIMENT, (
            "mean of P(positive) - P(negative) over the stage's comments, -1 to +1 (the curve above).",
            "该阶段每条评论“正面概率减负面概率”的均值，从 -1 到 +1（即上方的曲线）。",
        )),
        note(
            w,
            NEGATIVE,
            (
                "share of the stage's comments with negative sentiment.",
                "该阶段情感为负面的评论所占比例。",
            ),
        ),
        change_note(w, period_days, true),
        note(
            w,
            TOP_PAIN_POINTS,
            (
                "the stage's most frequent pain points, with their comments.",
                "该阶段最常见的痛点及其评论数。",
            ),
        ),
        note(w, EXAMPLES, EXAMPLES_NOTE),
    ];
    if let (Some(sc), Some(text)) = (rating_scale, rating) {
        items.insert(4, (scale_name(sc), w.get(text)));
    }
    items
}

/// The notes under the alerts table.
pub(super) fn alert_notes(w: Words) -> Vec<Note> {
    vec![
        note(
            w,
            PERIOD,
            ("first day of the period flagged.", "被标记周期的第一天。"),
        ),
        note(w, METRIC, (
            "volume (comments in the period) or negative_share (share of them negative).",
            "评论量（该周期的评论数）或负面占比（其中负面评论的比例）。",
        )),
        note(w, BASELINE, (
            "mean ± standard deviation of the same metric over the periods before it.",
            "同一指标在此前各周期的均值 ± 标准差。",
        )),
        (
            "z",
            w.get((
                "how many standard deviations above the baseline (counts use at least the Poisson noise, √mean).",
                "高出基线多少个标准差（计数至少按泊松噪声 √均值 计算）。",
            )),
        ),
        note(w, SAME_EVENT, (
            "other spikes of the same period made of the same comments (a topic of the same complaints, the other metric), folded into this alert.",
            "同一周期由相同评论构成的其他峰值（同样投诉组成的话题，或另一指标），已并入这条预警。",
        )),
    ]
}
