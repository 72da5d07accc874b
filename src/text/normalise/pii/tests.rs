//! The table of crafted forms: what must be masked (with its placeholder) and what must be
//! left alone. README.md's table of forms follows it.

use super::*;

/// (input, expected output) for forms that must be masked.
const MASKED: &[(&str, &str)] = &[
    // issue 29: width folding
    (
        "手机138－8765－1234 邮箱wang＠example．com 台灣0912-345-678",
        "手机<PHONE> 邮箱<EMAIL> 台灣<PHONE>",
    ),
    ("手机138－8765－1234", "手机<PHONE>"),
    ("邮箱wang＠example．com", "邮箱<EMAIL>"),
    ("ＺＨＡＮＧ＠ＱＱ．ＣＯＭ", "<EMAIL>"),
    ("手机：１３９１２３４５６７８", "手机：<PHONE>"),
    ("电话：１３８　８７６５　１２３４", "电话：<PHONE>"),
    ("８６１３８１２３４５６７８", "<PHONE>"),
    ("（０１０）８７６５４３２１", "<PHONE>"),
    ("１１０１０１１９９００３０７１２３Ｘ", "<ID_CARD>"),
    ("138—8765—1234", "<PHONE>"),
    // mainland mobiles
    ("138.8765.1234", "<PHONE>"),
    ("电话 138 8765 1234 谢谢", "电话 <PHONE> 谢谢"),
    ("tel15912345678", "tel<PHONE>"),
    ("请拨13812345678", "请拨<PHONE>"),
    ("+86 139-1234-5678", "<PHONE>"),
    ("(+86)13912345678", "<PHONE>"),
    ("0086 13912345678", "<PHONE>"),
    ("1388 7651 234", "<PHONE>"),
    ("13812345678,13912345678", "<PHONE>,<PHONE>"),
    // mainland landlines
    ("座机(010)87654321", "座机<PHONE>"),
    ("010-6234-5678", "<PHONE>"),
    ("0755 2345 6789", "<PHONE>"),
    ("020-87654321", "<PHONE>"),
    ("+86 10 8765 4321", "<PHONE>"),
    ("+86-755-2345-6789", "<PHONE>"),
    ("号码8765-4321", "号码<PHONE>"),
    // e-mails (issue 4: the local part is never Chinese text)
    (
        "退款没到账，客服让我发邮件到service@youxuan.cn，发了三次没人回",
        "退款没到账，客服让我发邮件到<EMAIL>，发了三次没人回",
    ),
    (
        "请联系我13812345678或者发邮件到zhang.san@example.com，谢谢",
        "请联系我<PHONE>或者发邮件到<EMAIL>，谢谢",
    ),
    (
        "mail zhang.wei+vip@mail.example.com.cn now",
        "mail <EMAIL> now",
    ),
    ("user@例子.中国", "<EMAIL>"),
    ("发到user@例子.中国发了三次", "发到<EMAIL>发了三次"),
    ("邮箱：张三@例子.中国", "邮箱：<EMAIL>"),
    ("发给张三@例子.中国", "发给张三<EMAIL>"),
    ("张三@例子.中国", "张三<EMAIL>"),
    ("Email: John.Doe@Example.co.uk.", "Email: <EMAIL>."),
    // ID cards
    ("身份证110101199003071234", "身份证<ID_CARD>"),
    ("110101 19900307 1234", "<ID_CARD>"),
    ("1101 0119 9003 0712 34", "<ID_CARD>"),
    ("ID110101199003071234", "ID<ID_CARD>"),
    ("11010119900307123X号", "<ID_CARD>号"),
    ("身份证号110101900307123", "身份证号<ID_CARD>"),
    // bank cards
    ("卡号4111 1111 1111 1111", "卡号<BANK_CARD>"),
    ("card 4111111111111111.", "card <BANK_CARD>."),
    // Hong Kong
    ("9123 4567", "<PHONE>"),
    ("+852 9123 4567", "<PHONE>"),
    ("香港電話 2345-6789", "香港電話 <PHONE>"),
    ("(852) 6123 4567", "<PHONE>"),
    ("852-9123-4567", "<PHONE>"),
    // Taiwan
    ("台灣0912-345-678", "台灣<PHONE>"),
    ("0912 345 678", "<PHONE>"),
    ("手機0912345678", "手機<PHONE>"),
    ("(02)2345-6789", "<PHONE>"),
    ("+886 912 345 678", "<PHONE>"),
    ("+886 2 2345 6789", "<PHONE>"),
    // North America and others
    ("(415) 555 2671", "<PHONE>"),
    ("415 555 2671", "<PHONE>"),
    ("+1 415 555 2671", "<PHONE>"),
    ("call +1 (415) 555-0134 today", "call <PHONE> today"),
    ("415.555.0134", "<PHONE>"),
    ("call 415-555-0134 or not", "call <PHONE> or not"),
    ("+44 20 7946 0958", "<PHONE>"),
];

/// Forms that must be left alone: prices, order numbers, dates, times, versions, quantities.
const KEPT: &[&str] = &[
    "¥1388.00",
    "价格￥1388.00，贵了",
    "$1,299.99",
    "HK$ 2345 6789",
    "买了3件，共1388元",
    "预算3999-4999元",
    "预算5000-6000",
    "1000 2000 3000",
    "月销 23456 件",
    "库存 12345678",
    "100%好评",
    "订单号20261012000123456789",
    "订单号 202405011234567",
    "tracking 1234 5678 9012 3456 ok",
    "2024-05-01",
    "2024/05/01 10:30",
    "2024.05.01",
    "20240501",
    "2024 0501",
    "2019-2023",
    "下单时间 2024-05-01 13:45:20",
    "14:30-15:45",
    "v1.2.3 升级到 iOS 17.4.1",
    "版本 3.10.12",
    "3.14159265358979",
    "192.168.1.100",
    "1920x1080",
    "hash a3f13812345678b2c",
    "@united lost my bag",
    "icon@2x.png",
    "abc@def",
    "ＡＢＣ　１２３ 全角",
];

#[test]
fn crafted_forms_are_masked_and_the_rest_is_left_alone() {
    let mut failures = Vec::new();
    for &(input, want) in MASKED {
        let (got, _) = mask_pii(input);
        if got != want {
            failures.push(format!("masked: {input:?} -> {got:?}, want {want:?}"));
        }
    }
    for &input in KEPT {
        let (got, kinds) = mask_pii(input);
        if got != input || !kinds.is_empty() {
            failures.push(format!("kept: {input:?} -> {got:?} {kinds:?}"));
        }
    }
    let total = MASKED.len() + KEPT.len();
    assert!(
        failures.is_empty(),
        "{} of {total} forms wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(MASKED.len() >= 58, "{} masked forms", MASKED.len());
}

#[test]
fn kinds_come_in_order_of_appearance() {
    let (m, kinds) = mask_pii("a@b.cn 110101199003071234 13812345678 4111111111111111 x@y.com");
    assert_eq!(m, "<EMAIL> <ID_CARD> <PHONE> <BANK_CARD> <EMAIL>");
    assert_eq!(kinds, ["EMAIL", "ID_CARD", "PHONE", "BANK_CARD", "EMAIL"]);
}

#[test]
fn text_outside_the_masks_keeps_its_script_and_width() {
    let s = "ＡＢＣ，電話１３８－８７６５－１２３４（急）！";
    let (m, kinds) = mask_pii(s);
    assert_eq!(m, "ＡＢＣ，電話<PHONE>（急）！");
    assert_eq!(kinds, ["PHONE"]);
}

#[test]
fn id_card_checks() {
    assert!(looks_like_id_card("110101199003071234"));
    assert!(looks_like_id_card("11010119900307123X"));
    assert!(looks_like_id_card("110101900307123"));
    assert!(looks_like_id_card("１１０１０１１９９００３０７１２３Ｘ"));
    assert!(!looks_like_id_card("201012199003071234"), "no region 20");
    assert!(!looks_like_id_card("110101199013071234"), "month 13");
    assert!(!looks_like_id_card("1101011990030712"), "16 digits");
    assert!(!looks_like_id_card("X"));
    assert_eq!(
        id_card_check_char(&[1, 1, 0, 1, 0, 5, 1, 9, 4, 9, 1, 2, 3, 1, 0, 0, 2]),
        'X',
        "GB 11643's example 11010519491231002X"
    );
}

/// A small deterministic generator of texts made of the characters the patterns care about:
/// masking must never panic, must keep every character it does not mask, and must be a
/// fixed point on its own output.
#[test]
fn arbitrary_texts_do_not_panic_and_masking_is_idempotent() {
    let alphabet: Vec<char> = "0123456789１２３８９ -.+()（）－＠．@xX　a中國例子.com\u{2014}㈱①½"
        .chars()
        .collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for len in 0..200 {
        let s: String = (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                alphabet[(state >> 33) as usize % alphabet.len()]
            })
            .collect();
        let (m, kinds) = mask_pii(&s);
        assert_eq!(m.matches('<').count(), kinds.len() + s.matches('<').count());
        assert_eq!(mask_pii(&m).0, m, "{s:?}");
    }
}

#[test]
fn long_inputs_stay_linear() {
    let digits = "1".repeat(200_000);
    let ats = "a@".repeat(100_000);
    let phones = "电话13812345678，".repeat(20_000);
    let t = std::time::Instant::now();
    assert_eq!(mask_pii(&digits).0, digits);
    assert_eq!(mask_pii(&ats).0, ats);
    let (m, kinds) = mask_pii(&phones);
    assert_eq!(kinds.len(), 20_000);
    assert_eq!(m, "电话<PHONE>，".repeat(20_000));
    assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
}
