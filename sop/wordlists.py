"""Default word lists for the customer-question detector (sop.detect).

Kept apart from the matching code so operators can read and extend them. Every list is a tuple of
plain phrases (not regexes); matching is case-insensitive and runs after NFKC normalisation, so
full-width forms (？ Ｏｋ) and the common traditional characters need no separate entries.
"""

from __future__ import annotations

# fmt: off

QUESTION_MARKS: tuple[str, ...] = (
    "?", "？", "¿",
)

# Interrogatives that signal a question wherever they appear. 吗 is unambiguous enough to count
# anywhere, since customers often run the next clause on without punctuation ("有货吗我想买").
INTERROGATIVES: tuple[str, ...] = (
    "吗", "怎么", "怎样", "咋", "如何", "为什么", "为啥", "多少", "多久", "多长", "多大", "几",
    "哪", "什么", "啥", "什么时候", "啥时候", "能不能", "有没有", "是不是", "可不可以", "会不会",
    "要不要", "行不行", "好不好", "对不对", "能否", "是否", "可否", "有无", "还有没", "对吧",
    "是吧",
)

# Sentence-final particles: count only at the end of a clause ("那退款呢", "是么"). A final 不/没
# is the colloquial yes/no question ("包邮不", "加辅食了没").
PARTICLES: tuple[str, ...] = (
    "吗", "么", "呢", "嘛", "不", "没", "没有",
)

# Requests and complaints: the customer expects staff to act even without a question form.
REQUEST_CUES: tuple[str, ...] = (
    "请问", "求助", "想咨询", "咨询一下", "咨询下", "问一下", "问下", "想问", "想了解", "想知道",
    "麻烦", "帮我", "帮忙", "求推荐", "求链接", "求解答", "求教", "投诉", "退款", "退货", "换货",
    "没收到", "没有收到", "坏了", "破了", "漏了", "发错", "少发", "漏发", "漏送", "催一下",
    "在吗", "在不在", "有人吗", "急", "没发货", "不发货", "还没到", "没到账", "一直没", "没人理",
    "没人回", "质量有问题", "过敏", "拉肚子", "红疹", "起疹", "烂脸", "掉色", "缩水", "太慢",
    "没更新", "给个说法", "怎么处理", "什么情况", "坏的", "破的", "少了", "过期", "不满意",
    "没拿到", "扣了钱", "做错",
)

# English interrogatives count only at the start of a clause ("how many…", "can I…").
ENGLISH_INTERROGATIVES: tuple[str, ...] = (
    "how", "what", "what's", "whats", "when", "where", "why", "which", "who", "can", "could",
    "would", "will", "do", "does", "did", "is", "are", "should", "may", "any", "anyone",
    "anybody",
)

# English request and complaint cues, matched as whole words anywhere.
ENGLISH_CUES: tuple[str, ...] = (
    "anyone know", "any idea", "help", "please", "pls", "plz", "refund", "not received",
    "never got", "never received", "haven't received", "hasn't arrived", "hasn't come",
    "still waiting", "broken", "broke", "leaked", "damaged", "wrong color", "wrong size",
    "wrong item", "rash", "where is my", "complaint", "i want to ask", "can i", "can you",
    "could you", "is there", "do you",
)

# Phrases that look like cues but are not: removed before cue matching.
NOT_CUES: tuple[str, ...] = (
    "没什么", "什么都", "什么的", "什么也", "没啥", "啥都", "啥也", "不怎么", "怎么这么",
    "怎么那么", "怎么都", "几乎", "好几", "十几", "几十", "几百", "几千", "这几天", "那几天",
    "前几天", "过几天", "没几", "哪里哪里", "哪儿都", "哪里都", "哪都", "多少有点", "多多少少",
    "或多或少",
    "what a", "how cute", "how nice", "how pretty", "how lovely", "how sweet", "how beautiful",
    "how adorable", "how cool", "thanks for the help", "thanks for your help", "no problem",
)

# Rhetorical or exclamative markers: lower the score of whatever cue the message has.
RHETORICAL_CUES: tuple[str, ...] = (
    "谁懂", "谁能懂", "谁能拒绝", "谁不想", "谁不爱", "谁顶得住", "谁还没", "谁不是", "难道",
    "不是吧", "真的假的", "怎么可能", "哪有", "不存在的", "不就是", "也太", "不是吗", "跟我一样",
    "和我一样", "哈哈", "笑死", "😂", "🤣", "lol", "haha", "hhh", "who else", "who needs",
    "who can say no",
)

# Advertising by customers (微商, 砍一刀, 淘口令). One cue plus a link, or two cues, is a promo.
PROMO_CUES: tuple[str, ...] = (
    "点击链接", "戳链接", "点链接", "复制口令", "复制这段", "口令", "砍一刀", "砍价", "助力",
    "拼团", "招代理", "一件代发", "兼职", "日赚", "日结", "月入", "刷单", "私聊", "私我", "加我",
    "扫码", "限时抢购", "限时秒杀", "秒杀", "限时特价", "清仓", "转让", "出闲置", "批发价",
    "原价", "免费领", "免费体验", "名额有限", "红包", "包邮", "扣1", "评论区", "晒出来", "打卡",
    "dm me", "click", "check out my", "voucher",
)

# A message made only of these (plus fillers, emoji, punctuation) never opens a question.
EXEMPT_PHRASES: tuple[str, ...] = (
    "谢谢", "谢啦", "多谢", "感谢", "好的", "好滴", "好哒", "好嘞", "好吧", "收到", "ok", "okay",
    "嗯嗯", "嗯", "哦哦", "哈哈", "呵呵", "嘻嘻", "👍", "👌", "🙏", "晚安", "早上好", "早安",
    "早", "午安", "下午好", "晚上好", "大家好", "你好", "您好", "哈喽", "嗨", "知道了", "明白",
    "明白了", "懂了", "可以了", "没问题", "辛苦", "thanks", "thank you", "thx", "ty", "got it",
    "noted", "good morning", "good night", "morning", "hello", "hi", "cool", "nice",
)

# Words that carry tone or address but no content; ignored when deciding "only exempt".
FILLERS: tuple[str, ...] = (
    "亲亲", "亲爱的", "亲", "宝子", "宝贝", "宝", "姐妹们", "姐妹", "宝妈们", "老师", "大家",
    "各位", "你们", "你", "您", "啦", "了", "哦", "噢", "喔", "呀", "哒", "滴", "的", "啊", "哈",
    "呐", "吖", "呢", "哟", "耶", "嘿", "咯", "么么哒", "非常", "太", "真", "很", "好", "多",
    "so", "much", "very", "all", "guys", "everyone", "a", "lot", "you",
)

# Staff "please wait" replies: answered-but-holding, start the follow-up timer (sla.md §7.4).
HOLDING_PHRASES: tuple[str, ...] = (
    "稍等", "请稍等", "请稍候", "稍候", "等一下", "等下", "我查一下", "我查下", "查一下", "查下",
    "查查", "我看看", "我看一下", "看一下", "看下", "我问问", "问一下", "问问", "我去问",
    "核实一下", "确认一下", "马上", "正在处理", "正在查询", "在处理", "处理中", "跟进中",
    "已反馈", "反馈一下", "帮您", "帮你", "给您", "这边", "let me check", "one moment",
    "just a moment", "hold on", "give me a minute", "give me a sec", "checking",
    "will get back to you", "looking into it", "let me see", "wait a moment",
)

# A customer's acknowledgement after an answer: resolves the question (sla.md §7.4).
ACK_PHRASES: tuple[str, ...] = (
    "谢谢", "谢啦", "多谢", "感谢", "好的", "好滴", "好哒", "好嘞", "收到", "明白了", "明白",
    "懂了", "知道了", "解决了", "可以了", "没问题了", "好了", "ok", "okay", "thanks",
    "thank you", "thx", "got it", "noted", "solved", "resolved", "that works", "perfect",
)

# fmt: on

# Traditional -> simplified for the characters the cue lists use: cheap (one str.translate) and
# enough for the common 繁體 questions (請問, 嗎, 怎麼, 幾, 為什麼, 沒收到, 謝謝).
TRADITIONAL_PAIRS: str = (
    "請请 問问 這这 麼么 嗎吗 為为 幾几 個个 會会 員员 積积 詢询 門门 現现 貨货 謝谢 點点 "
    "發发 還还 沒没 壞坏 幫帮 處处 時时 間间 們们 寶宝 媽妈 對对 應应 該该 說说 過过 來来 "
    "買买 賣卖 嬰婴 兒儿 單单 號号 訂订 優优 動动 價价 錢钱 煩烦 諮咨 檢检 質质 題题 換换 "
    "與与 樣样 後后 裡里 裏里 開开 關关 運运 費费 聯联 繫系 網网 線线 讓让 認认 確确 顧顾 "
    "覺觉 學学 東东 車车 長长 無无 聽听 氣气 歡欢 紅红 裝装 產产 區区 別别 飲饮 鮮鲜 營营 "
    "養养 師师 誰谁 態态 務务 實实 適适 當当 麗丽 膚肤 賬账 帳账 碼码 邊边 馬马 誤误 錯错 "
    "訴诉 場场 級级 辦办 閉闭 種种 喚唤 囉啰 語语 麵面"
)
