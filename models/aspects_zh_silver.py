"""Silver Chinese aspect spans for the shipped aspect tagger (MODEL_CARD.md, "Aspects").

ccf2018's subjects are category names (动力, 油耗, ...) that occur in the text only 42% of the
time, so the only Chinese spans in ../shared are car-forum category words. This script places a
fixed list of common product/service aspect nouns in online_shopping_10_cats train reviews
(distant supervision): every occurrence becomes an aspect span (longest match first), with
the review's label (positive or negative) as its polarity: weak labels (a mixed review gives
every aspect the review's side), which balance ccf2018's mostly neutral Chinese aspects.
Seeded sample, reviews of at most 80 characters.

usage: python3 models/aspects_zh_silver.py ../shared/corpora/online_shopping_10_cats/train.jsonl OUT.jsonl
"""
import json
import random
import sys

TERMS = """屏幕 电池 续航 价格 质量 物流 快递 送货 发货 包装 服务 客服 态度 外观 颜色 尺寸 做工
性能 速度 系统 键盘 声音 音质 散热 内存 硬盘 显卡 摄像头 拍照 信号 手感 味道 口感 分量 价钱
性价比 房间 早餐 前台 位置 环境 设施 卫生 隔音 空调 热水 网络 赠品 发票 售后 印刷 纸张 内容
翻译 面料 尺码 款式 效果 香味 泡沫 屏幕 触摸板 鼠标 电源 充电器 机身 外壳 风扇 噪音 驱动
windows 显示屏 分辨率 音响 耳机 按键 电视 图片 故事 作者 插图 装帧 床单 被子 毛巾 服务员
停车场 游泳池 交通 保质期 日期 口味 奶 水温 加热 温度 安装 师傅 尺码 材质 版型 线头""".split()
TERMS = sorted(set(TERMS), key=lambda t: (-len(t), t))


def spans(text):
    taken = [False] * len(text)
    out = []
    for t in TERMS:
        start = 0
        while True:
            i = text.find(t, start)
            if i < 0:
                break
            if not any(taken[i : i + len(t)]):
                for j in range(i, i + len(t)):
                    taken[j] = True
                out.append((i, i + len(t), t))
            start = i + 1
    return sorted(out)


def main(src, dst, n=3000, seed=42):
    rows = [json.loads(l) for l in open(src, encoding="utf-8")]
    rows = [r for r in rows if len(r["text"]) <= 80]
    random.Random(seed).shuffle(rows)
    k = 0
    with open(dst, "w", encoding="utf-8") as f:
        for r in rows:
            s = spans(r["text"])
            if not s:
                continue
            aspects = [{"term": t, "polarity": r["label"], "from": a, "to": b} for a, b, t in s]
            f.write(json.dumps({"id": r["id"], "text": r["text"], "aspects": aspects}, ensure_ascii=False) + "\n")
            k += 1
            if k >= n:
                break
    print(f"{k} reviews with {len(TERMS)} terms -> {dst}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
