"""Word banks for the support-ticket demo set: a fictional shop, its customers, and their problems.

Everything here is invented: the shop (Quillbrook), its products, couriers, people, streets and
order numbers. Templates use `{slot}` fields that the generator fills per ticket; a reply template
is only used when every field it names was mentioned in the ticket it answers.
"""

from dataclasses import dataclass, field

COMPANY = "Quillbrook"
PLUS = "Quillbrook Plus"

# (name, price): every product name is singular so "it" and "doesn't" always agree.
DEVICES = [
    ("Tessel smart plug", 24.99),
    ("Corvo headset", 89.00),
    ("Halden thermostat", 149.00),
    ("Brisa air purifier", 199.00),
    ("Pixa video doorbell", 129.00),
    ("Lumo smart bulb", 19.99),
    ("Vento fitness band", 59.00),
    ("Oska robot vacuum", 329.00),
    ("Sonnet speaker", 79.00),
    ("Fable e-reader", 119.00),
]
APPAREL = [
    ("Alder rain jacket", 120.00),
    ("Merle wool sweater", 85.00),
    ("Tamsin linen shirt", 45.00),
    ("Juniper hoodie", 55.00),
    ("Wrenna summer dress", 65.00),
    ("Fjell fleece", 70.00),
    ("Brae puffer jacket", 160.00),
]
HOME = [
    ("Fenna cast-iron pan", 49.00),
    ("Calder desk lamp", 39.50),
    ("Isla duvet cover", 75.00),
    ("Bram coffee grinder", 99.00),
    ("Holt chef's knife", 64.00),
    ("Sable backpack", 88.00),
    ("Maren mug set", 32.00),
]
CATALOGUE = {"device": DEVICES, "apparel": APPAREL, "any": DEVICES + APPAREL + HOME}

# (customer device, its operating system)
PHONES = [
    ("iPhone 13", "iOS 17"),
    ("iPhone 15", "iOS 18"),
    ("Pixel 7", "Android 14"),
    ("Galaxy S22", "Android 13"),
    ("Galaxy A54", "Android 14"),
    ("iPad Air", "iPadOS 17"),
    ("Moto G84", "Android 13"),
    ("iPhone SE", "iOS 16"),
]
BROWSERS = ["Chrome", "Firefox", "Safari", "Edge", "Chrome on my phone"]
COURIERS = ["ParcelWing", "SwiftRoute", "Northline Express", "Bluebox Couriers"]
COUNTRIES = ["Canada", "Ireland", "Norway", "Australia", "Germany", "New Zealand", "Portugal"]
PROMOS = ["SPRING20", "WELCOME10", "FREESHIP", "LOYAL15", "BDAY25", "FLASH30", "AUTUMN12"]
ERRORS = [
    "Error 503",
    "error code E-204",
    "'Something went wrong (17)'",
    "a 502 Bad Gateway page",
    "error QB-1009",
]
CURRENCIES = ["$", "$", "$", "£", "€"]
SIZES = ["XS", "S", "M", "L", "XL"]
COLOURS = ["navy", "olive", "charcoal", "rust", "cream", "forest green", "black", "sand"]
STREETS = [
    "14 Birch Lane",
    "7 Harbour View",
    "58 Millbrook Road",
    "310 Cedar Street, Apt 4B",
    "22 Quarry Close",
    "9 Lantern Row",
    "131 Orchard Way",
]
DATES = ["March 3", "the 14th", "May 21", "Friday", "the 2nd", "June 9", "Tuesday", "the 27th"]
WHENS = [
    "last week",
    "a few days ago",
    "yesterday",
    "on Monday",
    "earlier this week",
    "last month",
    "on the weekend",
]
WAITS = ["two weeks", "10 days", "over a week", "almost three weeks", "five days", "a month"]
FIRST_NAMES = [
    "Maria",
    "Tom",
    "Priya",
    "Jonas",
    "Mei",
    "Grace",
    "Ahmed",
    "Lena",
    "Carlos",
    "Aoife",
    "Dev",
    "Sofia",
    "Kwame",
    "Hannah",
    "Luca",
    "Noor",
    "Ben",
    "Yuki",
    "Olivia",
    "Mateo",
    "Freya",
    "Sam",
    "Ines",
    "Tariq",
    "Rosa",
    "Nils",
    "Chloe",
    "Emeka",
    "Julia",
    "Ravi",
    "Elif",
    "Marcus",
]
LAST_NAMES = [
    "Harrow",
    "Lindqvist",
    "Okafor",
    "Brennan",
    "Castell",
    "Moreau",
    "Tanaka",
    "Whitcombe",
    "Ferreira",
    "Nakamura",
    "Delacroix",
    "Quayle",
    "Osei",
    "Halloran",
    "Varga",
    "Pembury",
]
EMAIL_DOMAINS = ["example.com", "example.org", "example.net"]

# Tone-dependent framing. An empty string means "say nothing here".
GREETINGS = {
    "neutral": ["Hi,", "Hello,", "Hi there,", "Hi team,", "Hello Quillbrook,", "Hey,"],
    "polite": [
        "Hi there, I hope you're well.",
        "Hello, I hope you're having a good day.",
        "Good morning,",
        "Hi, thanks for taking the time to read this.",
        "Hello lovely people,",
    ],
    "formal": [
        "Dear Sir or Madam,",
        "Dear Quillbrook Customer Service,",
        "To whom it may concern,",
        "Dear Support Team,",
        "Good afternoon,",
    ],
    "frustrated": ["Hi,", "Hello,", "Hi again,", ""],
    "angry": ["", "", "Hello??", "Hi."],
    "confused": [
        "Hi,",
        "Hello, sorry to bother you.",
        "Hi, not sure if this is the right place.",
        "Hey there,",
    ],
    "terse": [""],
}
SIGNOFFS = {
    "neutral": ["Thanks", "Thanks,", "Thank you.", "Best,", "Cheers", "Thx"],
    "polite": [
        "Thank you so much!",
        "Many thanks,",
        "Thanks in advance for your help!",
        "Have a lovely day,",
        "Kind regards,",
    ],
    "formal": [
        "Kind regards,",
        "Yours faithfully,",
        "Best regards,",
        "Sincerely,",
        "Thank you for your prompt attention to this matter.",
    ],
    "frustrated": ["Thanks.", "Waiting for your reply.", "Please sort this out.", "Regards,"],
    "angry": ["", "Not impressed.", "Fix it.", "Still waiting."],
    "confused": [
        "Thanks for any help!",
        "Thanks, and sorry if this is obvious.",
        "Any help appreciated.",
    ],
    "terse": [""],
}
EMOTIONS = {
    "neutral": ["Not a big deal, just want to get it sorted.", "Would be good to get this fixed."],
    "polite": [
        "I'd really appreciate your help with this.",
        "Thank you for your patience with me!",
        "No rush, but I'd be grateful if you could look into it.",
    ],
    "formal": [
        "I would appreciate your assistance in resolving this matter.",
        "I trust this can be resolved promptly.",
    ],
    "frustrated": [
        "This is really frustrating.",
        "I'm starting to lose patience here.",
        "Honestly I'm pretty fed up.",
        "This is the second time I've had to write about this.",
        "I've already wasted way too much time on this.",
    ],
    "angry": [
        "This is RIDICULOUS.",
        "Absolutely unacceptable.",
        "Seriously?!",
        "Worst customer service I've ever dealt with.",
        "I am SO done with this.",
        "I'm furious.",
    ],
    "confused": [
        "I'm a bit lost, to be honest.",
        "Am I doing something wrong?",
        "I don't really understand what's going on.",
        "Is this normal?",
    ],
    "terse": [""],
}
# Said when the customer doesn't say what they want; the intent's own wants are preferred.
GENERIC_WANTS = {
    "neutral": ["Can you help?", "Let me know what to do.", "What are my options?"],
    "polite": ["Would you be able to help?", "Please let me know what you suggest."],
    "formal": ["Please advise on how to proceed.", "I look forward to your response."],
    "frustrated": ["Please just sort it out.", "I need an answer today."],
    "angry": ["Sort it out NOW.", "I want this fixed TODAY.", "Answer me!!!"],
    "confused": ["What should I do?", "Can someone explain?"],
    "terse": ["pls", "asap", "??", "thx"],
}
CONFUSED_LEADS = [
    "I'm not sure if I'm doing something wrong, but",
    "I might be missing something, but",
    "Sorry if this is a silly question, but",
    "Maybe I'm being silly, but",
]
FORMAL_OPENERS = {
    "billing": [
        "I am writing regarding a charge on my account.",
        "I am writing about a payment issue.",
    ],
    "shipping": ["I am writing regarding a recent order.", "I am writing about a delivery."],
    "returns": [
        "I am writing regarding a return.",
        "I am writing about an item I purchased from you.",
    ],
    "technical": [
        "I am writing to report a problem with one of your products.",
        "I am writing about a technical issue.",
    ],
    "account": ["I am writing regarding my customer account.", "I am writing about my account."],
}
BACKSTORIES = [
    "I've been a customer for years and never had a problem before.",
    "First time ordering from you.",
    "I'm travelling next week so I'd like to get this sorted quickly.",
    "I already spoke to someone on chat {when}, but the chat got disconnected.",
    "I tried calling but was on hold for 40 minutes.",
    "My partner usually deals with this kind of thing but they're away.",
    "A friend recommended your shop, so I was expecting better.",
    "I'm writing from my work email because I can't get into my own.",
    "I normally love your stuff, my whole flat is basically Quillbrook at this point.",
    "I'm not very good with technology, so please bear with me.",
    "I work night shifts so I can only check my messages in the morning.",
    "I couldn't find a phone number, so I'm writing here.",
    "I've read through your FAQ page but couldn't find an answer.",
    "I'm writing for my dad, it's his account and he isn't online much.",
]
# Customers who know the agent will need it volunteer the order number.
ORDER_REFERENCES = [
    "My order number is {order}.",
    "Order number: {order}.",
    "It's order {order}.",
    "The order is {order}.",
    "(Order {order})",
    "Ref: {order}",
]
NON_NATIVE_GREETINGS = ["Hello sir,", "Dear team,", "Good day,"]
NON_NATIVE_WANTS = [
    "Please kindly help me for this problem.",
    "I am waiting your answer.",
    "Please can you check this for me.",
    "Kindly check and reply me soon.",
]
NON_NATIVE_SIGNOFFS = ["Thanking you,", "Best regards,", "Thank you very much for your help."]
TEXT_SPEAK = {
    "please": "pls",
    "Please": "Pls",
    "thanks": "thx",
    "Thanks": "Thx",
    "you": "u",
    "your": "ur",
    "You": "U",
    "are": "r",
    "because": "cuz",
    "really": "rly",
    "tomorrow": "tmrw",
    "before": "b4",
}
CONTRACTIONS = {
    "it's been": "it has been",
    "It's been": "It has been",
    "won't": "will not",
    "can't": "cannot",
    "n't": " not",
    "I'm": "I am",
    "'ve": " have",
    "I'd": "I would",
    "I'll": "I will",
    "it's": "it is",
    "It's": "It is",
    "that's": "that is",
    "there's": "there is",
    "what's": "what is",
    "where's": "where is",
    "they're": "they are",
}
QWERTY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")  # typos hit a key next to the right one
# Asides are minor and come after the main request, so they never decide the label.
ASIDE_LEADS = [
    "Also, ",
    "Oh, and ",
    "Unrelated, but ",
    "P.S. ",
    "Separately, ",
    "One more thing: ",
    "While I have you, ",
    "Not urgent, but ",
]
ASIDES = {
    "billing": [
        "could you send me a receipt for my last order at some point?",
        "can I pay with a gift card next time?",
        "my {plus} renewal is coming up soon, is the price the same this year?",
    ],
    "shipping": [
        "do you ship to {country}? Asking for a friend.",
        "how long does express delivery usually take?",
        "can I pick up future orders from a parcel locker?",
    ],
    "returns": [
        "what's your return window on sale items?",
        "can gifts be exchanged without a receipt?",
    ],
    "technical": [
        "your app has been really slow for me lately.",
        "the search on your website doesn't work well on my phone.",
        "the dark mode in your app makes some of the text unreadable.",
    ],
    "account": [
        "could you update the email on my account to {email}?",
        "please unsubscribe me from the newsletter.",
        "how do I turn on two-factor login?",
    ],
}


@dataclass
class Intent:
    """One thing a customer can want: ways to ask for it, and a support agent's ways to answer.

    `need` names the slot an agent must have before acting (an order number, the phone model);
    when the ticket does not mention it the reply uses one of `asks` instead of one of `nexts`.
    """

    name: str
    cores: list[str]
    shorts: list[str]
    acks: list[str]
    nexts: list[str]
    details: list[str] = field(default_factory=list)
    wants: list[str] = field(default_factory=list)
    contexts: list[str] = field(default_factory=list)
    need: str | None = None
    asks: list[str] = field(default_factory=list)
    product: str = "any"
    calm: bool = False  # a plain question: nobody shouts about a return policy


BILLING = [
    Intent(
        "double_charge",
        cores=[
            "I was charged twice for order {order}.",
            "My bank statement shows two payments of {amount} for the same order.",
            "You've taken {amount} out of my account twice for one order.",
            "There are two identical charges from Quillbrook on my card, both for {amount}.",
            "I only placed one order but my card was billed twice.",
        ],
        shorts=["charged twice for {order}??", "double charge on my card", "you billed me twice"],
        contexts=[
            "I was going through my banking app {when}.",
            "I bought the {product} on {date}.",
        ],
        details=[
            "Both payments went through on {date}.",
            "The order only shows once in my account.",
            "I only clicked the pay button once, I'm sure of it.",
        ],
        wants=[
            "Please refund the extra payment.",
            "Can you reverse the duplicate charge?",
            "I'd like the second charge refunded.",
        ],
        acks=[
            "I'm sorry you were charged twice for order {order}.",
            "Sorry about the duplicate payment, that shouldn't happen.",
            "Thanks for flagging the double charge of {amount}, and sorry for the worry.",
        ],
        nexts=[
            "I've raised a refund for the extra payment, and it should be "
            "back on your card within 3-5 business days.",
            "Our billing team will reverse the second charge today, and "
            "you'll get an email once it's done.",
        ],
        need="order",
        asks=[
            "Could you send me the order number so I can find both "
            "payments and refund the extra one?",
            "Could you reply with the order number and the date of "
            "the charges so I can trace them?",
        ],
    ),
    Intent(
        "card_declined",
        cores=[
            "My card keeps getting declined when I try to pay.",
            "Checkout keeps saying my payment was declined, but my bank says the card is fine.",
            "I tried to buy the {product} three times and the payment was refused every time.",
            "Your site won't accept my credit card, it just says 'payment declined'.",
            "My debit card was declined even though there's plenty of money in the account.",
        ],
        shorts=["card declined again. why", "payment keeps getting declined"],
        details=[
            "I've double-checked the card number and the billing address.",
            "The same card works everywhere else.",
            "I've tried two different cards now.",
        ],
        wants=[
            "Is there another way I can pay?",
            "Can you tell me why it's being declined?",
            "Could you check if something is blocked on your side?",
        ],
        acks=[
            "Sorry you're having trouble paying, a declined card at checkout is really annoying.",
            "Thanks for letting me know your card is being declined.",
            "I'm sorry the payment for the {product} keeps getting refused.",
        ],
        nexts=[
            "Declines usually come from the bank's security check, so could you tell me "
            "roughly when you last tried and I'll look up the reason?",
            "Nothing is blocked on our side, so please try again with the bank's app "
            "open to approve the payment, or use another card.",
        ],
    ),
    Intent(
        "wrong_amount",
        cores=[
            "I was charged {amount} but the price on the website was lower.",
            "The total I paid for order {order} doesn't match the price shown at checkout.",
            "You charged me for shipping even though my order was over the free delivery limit.",
            "I was billed {amount} for the {product}, but it was on sale when I ordered it.",
            "The amount on my card statement is higher than what my receipt says.",
        ],
        shorts=["overcharged on {order}", "why was i charged {amount}??"],
        details=[
            "I have a screenshot of the price at checkout.",
            "The sale price was clearly shown on the product page.",
            "The difference isn't huge but it's the principle.",
        ],
        wants=[
            "Please refund the difference.",
            "Can you explain the extra charge?",
            "I'd like the difference back on my card.",
        ],
        acks=[
            "Sorry about the confusion over the amount charged for order {order}.",
            "Thanks for pointing out the price difference on the {product}.",
            "I'm sorry the charge didn't match what you saw at checkout.",
        ],
        nexts=[
            "I'm checking the order against our price history and will refund any "
            "difference to your card within 5 business days.",
            "If the checkout price was lower, we'll refund the difference, and "
            "I'll confirm by email once it's processed.",
        ],
        need="order",
        asks=[
            "Could you tell me the order number so I can compare the "
            "charge with the checkout total?",
            "Could you send the order number, and a screenshot of "
            "the checkout price if you have one?",
        ],
    ),
    Intent(
        "invoice",
        cores=[
            "I need a VAT invoice for order {order} for my company's expenses.",
            "Could you send me a receipt for my purchase on {date}? I can't find the email.",
            "Our accounts department needs an invoice with our company name and VAT number on it.",
            "The invoice for order {order} has my old address on it "
            "and my employer won't accept it.",
            "Where can I download invoices for my {plus} payments?",
        ],
        shorts=["need invoice for {order}", "receipt please"],
        details=[
            "I need it by the end of the month for my expense report.",
            "I checked the order page but there's no download button.",
            "A PDF would be perfect.",
        ],
        wants=[
            "Can you email it to me?",
            "Please send a corrected copy.",
            "Could you send it to this email address?",
        ],
        acks=[
            "Happy to help with an invoice for order {order}.",
            "Thanks for reaching out about the invoice.",
            "Sure, I can help you with the paperwork for your order.",
        ],
        nexts=[
            "I'll email a PDF invoice with the VAT details to the address "
            "on your account within the next hour.",
            "I've asked our billing team to reissue it, and you'll receive the "
            "corrected invoice by email within one business day.",
        ],
        need="order",
        asks=[
            "Could you send me the order number and the company name and "
            "VAT number you'd like on the invoice?"
        ],
    ),
    Intent(
        "promo_code",
        cores=[
            "My promo code {promo} didn't work at checkout.",
            "I entered the code {promo} but I was still charged full price.",
            "The 15% welcome discount wasn't taken off my first order.",
            "The site said my code {promo} had expired, but the email says "
            "it's valid until the end of the month.",
            "I forgot to add my discount code {promo} before paying.",
        ],
        shorts=["code {promo} not working", "discount didnt apply"],
        details=[
            "The order came to {amount} without the discount.",
            "I got the code in your newsletter.",
            "It says 'code not valid for this item'.",
        ],
        wants=[
            "Can you still apply it?",
            "Could you refund the discount amount?",
            "Please honour the code.",
        ],
        acks=[
            "Sorry the code {promo} didn't apply.",
            "Thanks for letting me know about the discount code.",
            "I'm sorry your discount wasn't taken off order {order}.",
        ],
        nexts=[
            "If the code was valid for your items, I'll refund the discount to your "
            "original payment method within 3-5 business days.",
            "I've checked the code's conditions and will refund the discount to your "
            "card, and you'll get a confirmation email shortly.",
        ],
        need="order",
        asks=[
            "Could you send me the order number so I can check the code "
            "against it and refund the discount if it applies?"
        ],
    ),
    Intent(
        "subscription",
        cores=[
            "I was charged {amount} for a {plus} renewal I didn't know was coming.",
            "I cancelled my {plus} membership last month but you charged me again.",
            "I signed up for the free trial of {plus} and got charged "
            "for the full year straight away.",
            "You renewed my {plus} membership for {amount} without asking me.",
            "Why am I still paying for {plus}? I thought I had cancelled it.",
        ],
        shorts=["why was I charged for plus again", "cancelled plus, still charged"],
        details=[
            "I never got a reminder email before the renewal.",
            "I don't even use the free delivery anymore.",
            "The charge went out on {date}.",
        ],
        wants=[
            "Please refund the renewal and cancel the membership.",
            "I'd like a refund for this charge.",
            "Please make sure it doesn't happen again.",
        ],
        acks=[
            "Sorry the {plus} charge came as a surprise.",
            "Thanks for reaching out about your {plus} membership.",
            "I'm sorry you were charged {amount} for a membership you didn't want.",
        ],
        nexts=[
            "Unused renewals can be refunded in full within 14 days, so I've started "
            "the refund and turned off auto-renewal for you.",
            "I'll look into the {plus} charge now, and if the membership went unused or was "
            "already cancelled, we'll refund it within 5 business days.",
        ],
    ),
    Intent(
        "refund_cancelled",
        cores=[
            "I cancelled order {order} before it shipped, but I still haven't got my money back.",
            "You charged me for an order that was cancelled.",
            "I cancelled my order {when} and the money still hasn't come back.",
            "I was only refunded part of the money for my cancelled order.",
            "My order was cancelled because it was out of stock, but "
            "the payment was never returned.",
        ],
        shorts=["where's my refund for cancelled order {order}", "cancelled order, still charged"],
        details=[
            "The cancellation confirmation came on {date}.",
            "It's been {wait} now.",
            "My bank says nothing is pending.",
        ],
        wants=[
            "When will the money be back?",
            "Please process the refund.",
            "Can you send me proof that the refund was issued?",
        ],
        acks=[
            "Sorry you're still waiting for your money back on order {order}.",
            "Thanks for your patience with the refund for your cancelled order.",
            "I'm sorry the refund hasn't reached you yet.",
        ],
        nexts=[
            "I've asked our billing team to confirm the refund, and you'll get the "
            "refund reference by email today so your bank can trace it.",
            "Refunds for cancelled orders take up to 5 business days to show, and "
            "I've flagged yours as overdue so it goes out today.",
        ],
        need="order",
        asks=["Could you share the order number so I can check where the refund is?"],
    ),
]

SHIPPING = [
    Intent(
        "where_is_order",
        cores=[
            "Where is my order {order}?",
            "My package still hasn't arrived and it's been {wait}.",
            "I ordered the {product} on {date} and there's still no sign of it.",
            "I'm still waiting for order {order}.",
            "My order hasn't shown up yet, can you tell me where it is?",
            "I haven't received my {product} yet.",
        ],
        shorts=[
            "where's my package??",
            "order {order} still not here",
            "wheres my order",
            "still no {product}",
        ],
        contexts=[
            "I placed the order on {date}.",
            "I paid for standard delivery.",
            "It's a birthday present for my mum, so the timing matters.",
            "I ordered a {product} for my brother {when}.",
        ],
        details=[
            "The confirmation email said 3-5 days.",
            "The order page just says 'processing'.",
            "I've asked my neighbours and nobody has it.",
        ],
        wants=[
            "Can you tell me when it will arrive?",
            "Please let me know what's going on.",
            "If it's lost, please send another one.",
        ],
        acks=[
            "Sorry your order {order} hasn't arrived yet.",
            "Thanks for checking in about your {product}.",
            "I'm sorry you're still waiting for your package.",
        ],
        nexts=[
            "I've asked the courier for an update and will email you the "
            "latest tracking details within 24 hours.",
            "I'm looking into where the parcel is now, and if it turns out to "
            "be lost we'll send a replacement at no cost.",
        ],
        need="order",
        asks=[
            "Could you send me your order number so I can check the tracking?",
            "Could you reply with the order number or the email used at "
            "checkout so I can find the parcel?",
        ],
    ),
    Intent(
        "delivery_delay",
        cores=[
            "My delivery date keeps getting pushed back.",
            "Order {order} was supposed to arrive on {date} and now the estimate says next week.",
            "The delivery of my {product} is late.",
            "Your site said delivery in two days, and it's now been {wait}.",
            "Why is my order taking so long? I paid for express shipping.",
        ],
        shorts=["delivery late again", "express shipping and still nothing??"],
        contexts=["It's a birthday present for my mum, so the timing matters."],
        details=[
            "I need it for an event on Saturday.",
            "I paid extra for express.",
            "The estimate has changed three times now.",
        ],
        wants=[
            "Can you tell me the real delivery date?",
            "Is there any way to speed it up?",
            "Will it arrive before the weekend?",
        ],
        acks=[
            "Sorry your delivery for order {order} has been delayed.",
            "I'm sorry the {product} is taking longer than expected.",
            "Thanks for your patience while your order is delayed.",
        ],
        nexts=[
            "The courier has a backlog in your area, and I'll email you a firm "
            "delivery date as soon as they confirm it.",
            "I've flagged the parcel as urgent with the courier and will "
            "update you within one business day.",
        ],
        need="order",
        asks=[
            "Could you share your order number so I can check the latest estimate with the courier?"
        ],
    ),
    Intent(
        "tracking",
        cores=[
            "The tracking number for order {order} doesn't work on the courier's website.",
            "Tracking has said 'label created' for {wait}.",
            "I never got a tracking number for my order.",
            "The tracking hasn't updated since {date}.",
            "The tracking link in my shipping email goes to a page that says 'not found'.",
        ],
        shorts=["tracking not updating", "no tracking number??"],
        details=[
            "I've tried it on the {courier} site too.",
            "It's been stuck on the same status for days.",
            "The shipping confirmation email didn't include a link.",
        ],
        wants=[
            "Can you check with the courier?",
            "Please send me a working tracking link.",
            "Is my parcel actually on its way?",
        ],
        acks=[
            "Sorry about the trouble with tracking for order {order}.",
            "Thanks for letting me know the tracking isn't working.",
            "I'm sorry the tracking hasn't given you any real information.",
        ],
        nexts=[
            "I've asked the courier to check the parcel's status and will email "
            "you a working tracking link within 24 hours.",
            "The parcel was handed to the courier, and I'll send you a fresh "
            "tracking link by email as soon as it's scanned again.",
        ],
        need="order",
        asks=["Could you send me the order number so I can look up the parcel with the courier?"],
    ),
    Intent(
        "marked_delivered",
        cores=[
            "Tracking says my parcel was delivered {when}, but I never got it.",
            "My order {order} shows as delivered but it's not here.",
            "The courier marked my package as delivered, but it's nowhere to be found.",
            "It says 'delivered, left at front door' but there's nothing at my door.",
        ],
        shorts=["says delivered but its not here", "marked delivered, never came"],
        details=[
            "I was home all day.",
            "I've checked with the neighbours and the building's mailroom.",
            "There's no delivery photo like there usually is.",
        ],
        wants=[
            "Can you open an investigation with the courier?",
            "Please send a replacement.",
            "What happens now?",
        ],
        acks=[
            "I'm sorry order {order} shows as delivered when it never reached you.",
            "Sorry about the missing parcel, that's really frustrating.",
            "Thanks for checking around for the parcel before getting in touch.",
        ],
        nexts=[
            "I've opened a trace with the courier, which takes up to 48 hours, and if "
            "the parcel isn't found we'll send a replacement.",
            "I've started an investigation with the courier and will email you "
            "within two business days with the outcome.",
        ],
        need="order",
        asks=[
            "Could you confirm the order number and your delivery address "
            "so I can open a trace with the courier?"
        ],
    ),
    Intent(
        "address_change",
        cores=[
            "I typed the wrong address on order {order}, can you change it before it ships?",
            "I just noticed my order is going to my old address.",
            "I made a typo in the house number for my delivery.",
            "Can I change the delivery address for order {order}? I'll "
            "be at my parents' place that week.",
            "The shipping address on my order is missing the apartment number.",
        ],
        shorts=["wrong address on {order}!! pls change", "need to change delivery address"],
        details=[
            "The correct address is {street}.",
            "It should go to {street} instead.",
            "The order page says it hasn't shipped yet.",
        ],
        wants=[
            "Please update it before it goes out.",
            "Can you stop the parcel?",
            "Can you fix it before the courier picks it up?",
        ],
        acks=[
            "Thanks for catching the address problem on order {order} so quickly.",
            "No problem, I can help with the delivery address.",
            "Thanks for letting us know before the parcel went out.",
        ],
        nexts=[
            "If the parcel hasn't left our warehouse, I'll change the address to "
            "{street} today and send you a confirmation email.",
            "I've asked the warehouse to hold the parcel while we update the "
            "address, and I'll confirm within a few hours.",
        ],
        need="order",
        asks=[
            "Could you send me the order number and the full correct "
            "address so I can update it before it ships?"
        ],
    ),
    Intent(
        "courier_problem",
        cores=[
            "The {courier} driver left my parcel outside in the rain.",
            "The courier says they tried to deliver, but I was home and nobody knocked.",
            "Your courier threw my package over the fence.",
            "The {courier} driver was really rude when dropping off my order.",
            "I got a card saying I missed the delivery, but the depot is an hour's drive away.",
        ],
        shorts=["courier didnt even knock", "{courier} left my parcel in the rain"],
        details=[
            "The box was soaked through.",
            "My doorbell camera shows nobody came to the door.",
            "This is the third time with {courier}.",
        ],
        wants=[
            "Can you arrange a redelivery?",
            "Please pass this on to the courier.",
            "Can you use a different courier for my orders?",
        ],
        acks=[
            "Sorry about your experience with the courier.",
            "I'm sorry the {courier} driver handled your delivery like that.",
            "Thanks for telling us about the delivery, that's not the service we expect.",
        ],
        nexts=[
            "I've reported this to the courier's local depot and can "
            "arrange a redelivery at a time that suits you.",
            "I've logged a complaint with the courier and added a "
            "delivery note so the driver knocks next time.",
        ],
    ),
    Intent(
        "damaged_in_transit",
        cores=[
            "The box arrived crushed and the {product} inside is broken.",
            "My {product} arrived damaged, the packaging was completely torn open.",
            "The parcel turned up soaking wet and the {product} is ruined.",
            "Order {order} arrived with a big dent in the box and the {product} is cracked.",
        ],
        shorts=["{product} arrived smashed", "box came crushed"],
        details=[
            "I've taken photos of the box and the item.",
            "The courier left it like that at the door.",
            "I haven't opened the inner packaging any further.",
        ],
        wants=[
            "Can you send a replacement?",
            "I'd really like a replacement as soon as possible.",
            "What do you need from me?",
        ],
        acks=[
            "I'm so sorry your {product} arrived damaged.",
            "Sorry the parcel for order {order} was damaged on the way.",
            "I'm sorry your order arrived in that state.",
        ],
        nexts=[
            "Could you send a photo of the box and the item so I can file a "
            "claim with the courier and ship a replacement?",
            "Once we have a photo of the damage, we'll send a replacement at no "
            "cost and you won't need to send anything back.",
        ],
    ),
    Intent(
        "delivery_options",
        cores=[
            "Do you offer next-day delivery?",
            "How much does shipping to {country} cost?",
            "Can I pick up my order from a parcel locker instead of home delivery?",
            "Do you deliver on weekends?",
            "Is there free shipping over a certain amount?",
            "How long does standard delivery usually take to {country}?",
        ],
        shorts=["do u ship to {country}?", "next day delivery?"],
        contexts=[
            "I'm thinking about ordering the {product}.",
            "I want to order a gift for a friend who lives abroad.",
        ],
        details=["I need it by {date}.", "I'm not home during the day."],
        wants=["Just want to check before I order.", "Thanks for letting me know."],
        acks=[
            "Thanks for asking about our delivery options.",
            "Thanks for your question about delivery to {country}.",
        ],
        nexts=[
            "Standard delivery takes 3-5 business days, express arrives next day if you "
            "order by 2pm, and both prices are shown at checkout.",
            "You'll see every option for your address at checkout, including "
            "next-day, weekend and parcel locker delivery.",
            "We ship to {country} in 5-8 business days, and the exact cost "
            "appears at checkout once you enter your address.",
        ],
        calm=True,
    ),
]

RETURNS = [
    Intent(
        "start_return",
        cores=[
            "I'd like to return the {product} I bought {when}.",
            "How do I send back order {order}? It's not what I expected.",
            "The {product} doesn't fit, so I want to return it.",
            "I changed my mind about the {product}, can I send it back?",
            "The {product} looks nothing like the pictures, I want to return it for a refund.",
            "I want to return one item from order {order}.",
        ],
        shorts=["want to return {order}", "how do i return something", "return the {product} pls"],
        details=[
            "It's unused and still in the original packaging.",
            "I've only tried it once.",
            "The colour is way off compared to the website.",
        ],
        wants=[
            "Please send me a return label.",
            "What do I need to do?",
            "I'd like a refund to my card.",
        ],
        acks=[
            "Sorry the {product} wasn't right for you.",
            "Thanks for letting me know you'd like to return order {order}.",
            "No problem at all, I can help you with the return.",
        ],
        nexts=[
            "I've emailed you a prepaid return label, and your refund will be "
            "processed within 5 business days of the item reaching us.",
            "Just pack the item with the slip inside and drop it off with "
            "the prepaid label I've sent to your email.",
        ],
        need="order",
        asks=["Could you send me the order number so I can create a prepaid return label for you?"],
    ),
    Intent(
        "exchange",
        cores=[
            "Can I exchange the {product} for a size {size}?",
            "The {product} is too small, I'd like to swap it for the next size up.",
            "I'd like to swap my {old_colour} {product} for a different colour.",
            "I ordered a size {old_size} {product} but it's too big, "
            "can I exchange it for a {size}?",
            "Is it possible to exchange my {product} for the {colour} one?",
        ],
        shorts=["exchange {product} for {size}?", "need a bigger size"],
        details=[
            "I haven't worn it, the tags are still on.",
            "I still have the original packaging.",
            "I love the style, it's just not right as it is.",
        ],
        wants=[
            "Can you send the new one before I return the old one?",
            "Please let me know how the exchange works.",
        ],
        acks=[
            "Happy to help you exchange the {product}.",
            "Sorry the {product} didn't work out.",
            "Thanks for reaching out about an exchange.",
        ],
        nexts=[
            "I've reserved a size {size} for you and emailed a prepaid label, and "
            "we'll ship it as soon as your return is scanned.",
            "Once you send the original back with the prepaid label I've "
            "emailed, we'll send the {colour} one straight away.",
            "I've emailed you a prepaid label, and the replacement will go out "
            "as soon as the courier scans your parcel.",
        ],
        need="order",
        asks=[
            "Could you send me your order number so I can set up the "
            "exchange and email you a prepaid label?"
        ],
        product="apparel",
    ),
    Intent(
        "return_label",
        cores=[
            "I need a return label for order {order}.",
            "I requested a return {when} but never got the return label.",
            "The return label you sent has the wrong address on it.",
            "My printer is broken, can I get a QR code for my return instead of a label?",
            "Do I have to pay for the return label? The email says there's a fee.",
        ],
        shorts=["return label pls", "still no return label"],
        details=[
            "I checked my spam folder too.",
            "The drop-off deadline is in a few days.",
            "The item is already packed and ready to go.",
        ],
        wants=["Can you resend it?", "Please email me a new one.", "What should I do?"],
        acks=[
            "Sorry you don't have a working return label for order {order} yet.",
            "Thanks for letting me know about the return label.",
        ],
        nexts=[
            "I've emailed a new prepaid label along with a QR code you can show "
            "at any drop-off point instead of printing.",
            "A fresh prepaid label is on its way to your email now, and "
            "I've extended your return window by 7 days.",
        ],
        need="order",
        asks=["Could you send me the order number so I can generate a new return label?"],
    ),
    Intent(
        "return_policy",
        cores=[
            "Is it too late to return something I bought {wait} ago?",
            "What's your return policy for items that have been opened?",
            "Can I return a sale item?",
            "How long do I have to return the {product}?",
            "I got the {product} as a gift, can I still return it without the receipt?",
            "The {product} was delivered {wait} ago, am I still within the return window?",
        ],
        shorts=["return window for sale items?", "can i still return it"],
        wants=["Just want to check before I send it back.", "Thanks for letting me know."],
        acks=[
            "Thanks for checking about the return window.",
            "Good question about returning the {product}.",
        ],
        nexts=[
            "Items can be returned within 30 days of delivery, even if opened, as "
            "long as they're unused and in good condition.",
            "Sale items and gifts can be returned within 30 days of delivery, and you can "
            "start the return from the order page or by replying here.",
        ],
        calm=True,
    ),
    Intent(
        "refund_after_return",
        cores=[
            "I sent the {product} back {wait} ago and I still haven't got my refund.",
            "The courier confirmed you received my return on {date}, so where's my refund?",
            "My return for order {order} was delivered to your warehouse "
            "but the refund hasn't come through.",
            "It's been {wait} since I sent my return back and there's still no refund.",
            "I returned my order and only got part of the money back.",
        ],
        shorts=["returned {order} weeks ago, no refund", "where is my refund for the return"],
        details=[
            "I have the drop-off receipt.",
            "The tracking shows it was signed for.",
            "I sent it back in the original box.",
        ],
        wants=[
            "When will I see the money?",
            "Please check and let me know.",
            "I'd like the full refund.",
        ],
        acks=[
            "Sorry you're still waiting for the refund on your return.",
            "Thanks for sending back the {product}, and sorry the refund is taking a while.",
            "I'm sorry the refund for order {order} hasn't arrived yet.",
        ],
        nexts=[
            "Returns are checked within 3 business days of arriving, and I've asked the "
            "warehouse to prioritise yours so the refund goes out this week.",
            "I've asked our returns team to check your parcel, and you'll get "
            "an email as soon as the refund is issued.",
        ],
        need="order",
        asks=[
            "Could you share the order number or the return tracking "
            "number so I can check where your refund is?"
        ],
    ),
    Intent(
        "wrong_item",
        cores=[
            "I ordered the {product} but got a completely different item.",
            "You sent me the wrong size, I ordered a {size} and got a {old_size}.",
            "The box for order {order} had someone else's item in it.",
            "I received the {product} in {old_colour} instead of {colour}.",
            "Wrong item in my parcel, I want to send it back.",
        ],
        shorts=["wrong item in my box", "got the wrong {product}"],
        details=[
            "The packing slip says the right thing, but the item doesn't match.",
            "I haven't used it, it's still sealed.",
        ],
        wants=[
            "How do I send it back?",
            "Please send me a return label so I can send it back.",
            "I'd like to return it and get the right one.",
        ],
        acks=[
            "Sorry we sent the wrong item in order {order}.",
            "I'm sorry you received the wrong {product}.",
            "Apologies for the mix-up with your order.",
        ],
        nexts=[
            "I've emailed you a prepaid return label, and we'll ship the correct "
            "item as soon as the wrong one is on its way back.",
            "Please send the item back with the free label I've emailed, and "
            "the right one will go out to you today.",
        ],
        need="order",
        asks=[
            "Could you send me the order number and a photo of the item "
            "you received so I can set up the return?"
        ],
    ),
]

TECHNICAL = [
    Intent(
        "wont_work",
        cores=[
            "My {product} won't turn on.",
            "The {product} stopped working after two days.",
            "My {product} just shows a blinking red light and does nothing.",
            "The {product} turns on but doesn't respond to anything.",
            "My new {product} was completely dead out of the box.",
            "The {product} keeps switching itself off after a few minutes.",
        ],
        shorts=["{product} not working", "my {product} is dead", "{product} wont turn on"],
        contexts=["I got the {product} {when}.", "I've had the {product} for about a month."],
        details=[
            "I've charged it overnight.",
            "I tried a different socket and a different cable.",
            "I already did the factory reset from the manual.",
        ],
        wants=[
            "How do I fix it?",
            "Is there something else I can try?",
            "If it's faulty, I'd like a replacement.",
        ],
        acks=[
            "Sorry to hear your {product} isn't working properly.",
            "Thanks for the details on the {product}, and sorry for the trouble.",
            "I'm sorry the {product} has stopped working.",
            "Sorry to hear it isn't working, that's not the experience we want you to have.",
        ],
        nexts=[
            "Please hold the power button for 20 seconds to force a restart, and if it "
            "still doesn't respond we'll send you a replacement.",
            "Could you send a short video of what happens when you press the "
            "power button so our technicians can take a look?",
        ],
        product="device",
    ),
    Intent(
        "pairing",
        cores=[
            "I can't pair my {product} with my {device}.",
            "The {product} won't connect to my wifi.",
            "My {product} keeps disconnecting from the app.",
            "Bluetooth finds the {product} but pairing fails every time.",
            "The app can't find my {product} during setup.",
        ],
        shorts=["{product} wont pair", "cant connect {product} to wifi"],
        contexts=["I'm setting up the {product} I got {when}."],
        details=[
            "I'm on {os}.",
            "My router has separate 2.4 and 5GHz networks, if that matters.",
            "Everything else connects fine.",
        ],
        wants=["What am I doing wrong?", "Any ideas?", "Can you help me get it connected?"],
        acks=[
            "Sorry you're having trouble connecting the {product}.",
            "Thanks for the details about the connection problem with your {device}.",
            "Sorry the pairing isn't working, that's really annoying during setup.",
        ],
        nexts=[
            "Please update the Quillbrook app, restart the {product} by holding its "
            "button for 10 seconds, and then try pairing again.",
            "There's a known pairing issue on {os} that the latest app update "
            "fixes, so please update the app and try again.",
            "Please update the Quillbrook app and restart your phone, then keep the "
            "device within a metre of it while you pair again.",
        ],
        need="device",
        asks=[
            "Could you tell me which phone and app version you're using so "
            "I can check for known pairing issues?"
        ],
        product="device",
    ),
    Intent(
        "app_crash",
        cores=[
            "The {company} app crashes every time I open it.",
            "The app freezes on the loading screen and never gets any further.",
            "Ever since the last update, the app closes by itself when I tap on my orders.",
            "The app on my {device} crashes as soon as I open the basket.",
            "Your app keeps crashing on {os}.",
        ],
        shorts=["app keeps crashing", "app crashes when i open it"],
        details=[
            "I've deleted and reinstalled it twice.",
            "It was working fine {when}.",
            "My phone is fully up to date.",
        ],
        wants=["Is there a fix coming?", "Please fix this.", "Can you look into it?"],
        acks=[
            "Sorry the app keeps crashing on your {device}.",
            "Thanks for reporting the app crash, and sorry for the hassle.",
        ],
        nexts=[
            "Our developers know about a crash on {os}, and a fix is "
            "coming in the next app update this week.",
            "Please clear the app's cache and make sure you're on the latest version, and if "
            "it still crashes I'll pass the details to our developers.",
        ],
        need="device",
        asks=[
            "Could you tell me which phone model and system version you're "
            "using so I can pass it to our developers?"
        ],
    ),
    Intent(
        "website_error",
        cores=[
            "I keep getting {error} when I try to open my order history on the website.",
            "The website shows a blank page when I click on my basket.",
            "Your website won't load at all in {browser}.",
            "Pages on your site keep timing out.",
            "The 'add to basket' button on your website doesn't do anything.",
        ],
        shorts=["website down?", "site keeps giving {error}"],
        details=[
            "I've cleared my cache and cookies.",
            "It happens on both my laptop and my phone.",
            "I've tried a private window too.",
        ],
        wants=["Can you check what's wrong?", "Is the site down?", "Please get it fixed."],
        acks=[
            "Sorry the website is giving you trouble.",
            "Thanks for letting us know about the {error} message.",
            "I'm sorry the site isn't working for you in {browser}.",
        ],
        nexts=[
            "We had a short outage this morning that should now be fixed, so please "
            "try again and let me know if the error comes back.",
            "Could you send a screenshot of the page and tell me roughly what "
            "time it happened so our web team can trace it?",
        ],
    ),
    Intent(
        "firmware",
        cores=[
            "The firmware update got stuck at 60% and now my {product} won't start.",
            "After the latest update my {product} keeps disconnecting.",
            "My {product} says an update is available but it fails every time I install it.",
            "Since the firmware update {when}, the {product} is really slow to respond.",
        ],
        shorts=["update bricked my {product}", "{product} update keeps failing"],
        details=[
            "The light just keeps flashing orange.",
            "The app says 'update failed, try again later'.",
        ],
        wants=["Can I roll back the update?", "How do I fix this?"],
        acks=[
            "Sorry the update caused problems with your {product}.",
            "I'm sorry the firmware update didn't go smoothly.",
        ],
        nexts=[
            "Please hold the reset button for 15 seconds while it's plugged in to "
            "restore the previous firmware, then try the update again.",
            "We've paused that update while we fix it, so a factory reset "
            "will put it back on the stable version.",
        ],
        product="device",
    ),
    Intent(
        "setup",
        cores=[
            "The setup guide says to scan a QR code, but there isn't one on my {product}.",
            "I'm stuck on the setup step where the app asks for a hub code.",
            "I can't figure out how to set up the {product}, the instructions make no sense.",
            "The {product} setup keeps failing at the last step.",
        ],
        shorts=["how do i set up the {product}", "{product} setup fails"],
        details=[
            "I've watched the video on your site twice.",
            "The app just spins forever on 'finishing setup'.",
        ],
        wants=["Can you walk me through it?", "Is there a proper manual somewhere?"],
        acks=[
            "Sorry the setup of your {product} has been confusing.",
            "Thanks for reaching out about setting up the {product}.",
            "Sorry you got stuck during setup, let's get you up and running.",
        ],
        nexts=[
            "Please restart the device and the app, keep your phone close to it and try "
            "again, and I've also emailed you our illustrated setup guide.",
            "I've emailed you our step-by-step setup guide with pictures, and you "
            "can reply here if you get stuck on any step.",
        ],
        product="device",
    ),
    Intent(
        "app_login_bug",
        cores=[
            "The app shows 'unknown error' every time I log in, even "
            "though my password works on the website.",
            "The login button in the app does nothing when I tap it.",
            "When I sign in on the app, it loads for a second and then "
            "throws me back to the login screen.",
            "The app says 'server error' when I try to log in, but logging in on my laptop works.",
        ],
        shorts=["app login button broken", "app wont let me log in, website works"],
        details=[
            "I've reset my password already, it's not that.",
            "It started after the last app update.",
            "I'm using it on my {device}.",
        ],
        wants=["Is this a known bug?", "Please fix the app.", "Is there a workaround?"],
        acks=[
            "Sorry the app won't let you log in even with the right password.",
            "Thanks for reporting the login problem in the app on your {device}.",
        ],
        nexts=[
            "This is a known bug in the latest version, and the fix is in an "
            "update we're releasing in the next couple of days.",
            "Please update the app and clear its cache, and if it still fails "
            "I'll pass your device details to our developers.",
        ],
        need="device",
        asks=[
            "Could you tell me which phone and app version you're using "
            "so our developers can look into it?"
        ],
    ),
    Intent(
        "performance",
        cores=[
            "The battery on my {product} drains in a couple of hours.",
            "The {product} lags a few seconds behind every command.",
            "My {product} takes forever to charge.",
            "The {product} keeps dropping its connection every evening.",
        ],
        shorts=["{product} battery dies so fast", "{product} super laggy"],
        details=["It's only a few weeks old.", "I've turned off every feature I don't use."],
        wants=["Is this normal?", "Is it faulty?", "What can I do about it?"],
        acks=[
            "Sorry your {product} isn't performing as it should.",
            "Thanks for the details about the {product}.",
            "Thanks for letting us know, that definitely isn't how it should behave.",
        ],
        nexts=[
            "Could you tell me roughly how old it is and which firmware version "
            "the app shows, so our technicians can check it?",
            "Please update the firmware from the app and restart it, and if nothing "
            "changes we'll arrange a replacement.",
        ],
        product="device",
    ),
]

ACCOUNT = [
    Intent(
        "password_reset",
        cores=[
            "I forgot my password and the reset email never arrives.",
            "The password reset link says it has expired, even when I click it straight away.",
            "I can't log in, it says my password is wrong but I'm sure it's right.",
            "How do I reset my password? I can't find the option anywhere.",
            "I've reset my password three times and it still won't let me in.",
        ],
        shorts=["cant log in", "password reset not working", "forgot my password"],
        details=[
            "I've checked my spam folder.",
            "The account is under {email}.",
            "I don't remember which email I signed up with.",
        ],
        wants=["Can you reset it for me?", "Please help me get back into my account."],
        acks=[
            "Sorry you're locked out of your account.",
            "Thanks for letting me know the password reset isn't working.",
        ],
        nexts=[
            "I've sent a fresh reset link to {email}, which is valid for one hour, so "
            "please check your spam folder if it doesn't appear.",
            "I've cleared the old reset requests, so please request a "
            "new link and use it within the hour.",
        ],
        need="email",
        asks=[
            "Could you confirm the email address on your account so "
            "I can send you a new reset link?"
        ],
    ),
    Intent(
        "two_factor",
        cores=[
            "I got a new phone and can't get the two-factor codes anymore.",
            "I'm not receiving the verification code by text.",
            "The 2FA code from my authenticator app is always rejected.",
            "I lost my phone and now I can't log in because of the security codes.",
        ],
        shorts=["not getting 2fa code", "verification code never comes"],
        details=[
            "I still have the same phone number.",
            "My old phone is broken so I can't move the authenticator over.",
            "My account email is {email}.",
        ],
        wants=["Can you turn off 2FA so I can set it up again?", "How do I get back in?"],
        acks=[
            "Sorry you can't get your verification codes.",
            "Thanks for reaching out about two-factor sign-in.",
        ],
        nexts=[
            "For your security, I've sent an identity check to {email}, and once you "
            "confirm it I can reset two-factor authentication.",
            "Please use one of the backup codes from when you set up 2FA, or "
            "reply here and I'll start a verified reset.",
        ],
        need="email",
        asks=[
            "Could you confirm the email address on the account so I "
            "can start a secure two-factor reset?"
        ],
    ),
    Intent(
        "change_details",
        cores=[
            "How do I change the email address on my account to {email}?",
            "I need to update my name on my account, I got married.",
            "I want to change the phone number in my profile, but the field is greyed out.",
            "Can you update the email on my account? I don't use the old one anymore.",
            "I moved, and I need to update the saved address in my profile.",
        ],
        shorts=["change my email to {email} pls", "update my address in my profile"],
        details=["My new address is {street}.", "The new email is {email}."],
        wants=["Can you do it for me?", "Please update it.", "Where do I do that?"],
        acks=[
            "Happy to help update your account details.",
            "Thanks for letting us know about the change.",
        ],
        nexts=[
            "I've sent a confirmation link to {email}, and the change "
            "takes effect as soon as you click it.",
            "You can edit this under Account > Personal details, and the "
            "change applies to future orders straight away.",
        ],
    ),
    Intent(
        "delete_account",
        cores=[
            "Please delete my account and all my data.",
            "I want to close my account.",
            "How do I delete my {company} account? I can't find the option.",
            "I'd like my account removed, I don't shop with you anymore.",
        ],
        shorts=["delete my account", "close my account pls"],
        details=["I don't want any more emails either.", "The email on it is {email}."],
        wants=["Please confirm when it's done.", "Let me know once it's gone."],
        acks=[
            "Sorry to see you go, and thanks for letting us know.",
            "I can help you close your account.",
        ],
        nexts=[
            "I've sent a confirmation link to {email}, and once you click it your "
            "account and personal data will be deleted within 30 days.",
            "Once you confirm the request from your account email, everything will be "
            "deleted within 30 days and you'll get a final confirmation.",
        ],
        need="email",
        asks=[
            "Could you confirm the email address on the account so I can "
            "send you a deletion confirmation link?"
        ],
    ),
    Intent(
        "privacy",
        cores=[
            "I'd like a copy of all the personal data you hold about me.",
            "Why do you have my phone number? Please remove it.",
            "I want to know who you share my personal data with.",
            "Please stop using my data for personalised ads.",
        ],
        shorts=["data request", "what data do you have on me"],
        details=["I never gave you permission for that.", "My account email is {email}."],
        wants=["Please confirm in writing.", "How long will this take?"],
        acks=[
            "Thanks for your privacy request.",
            "Thanks for reaching out about your personal data.",
        ],
        nexts=[
            "I've passed this to our privacy team, who will email you "
            "within 30 days with a full response.",
            "Our privacy team will handle this and confirm by email "
            "once it's done, usually within a week.",
        ],
    ),
    Intent(
        "account_locked",
        cores=[
            "My account got locked after too many login attempts.",
            "It says my account has been suspended and I don't know why.",
            "I got an email saying someone logged into my account from another country.",
            "My account is locked and the unlock email never came.",
        ],
        shorts=["account locked??", "why is my account suspended"],
        details=["I haven't done anything unusual.", "I can't see my orders at all now."],
        wants=["Please unlock it.", "How do I get access back?", "Is my account safe?"],
        acks=[
            "Sorry your account is locked.",
            "Thanks for letting us know, and sorry for the worry.",
        ],
        nexts=[
            "For security, I've sent an unlock link to the email on your account, and I'd "
            "recommend changing your password once you're back in.",
            "I've secured the account for now and will email you the steps "
            "to verify your identity and get back in.",
        ],
    ),
    Intent(
        "notifications",
        cores=[
            "Please stop sending me marketing emails.",
            "How do I turn off the push notifications? I'm getting five a day.",
            "I unsubscribed from your newsletter weeks ago and I'm still getting it.",
            "I'd like to get order updates by text instead of email.",
            "Can I turn off the promotional texts but keep the delivery updates?",
        ],
        shorts=["unsubscribe me", "stop the emails"],
        details=["I've clicked unsubscribe twice.", "It's getting really annoying."],
        wants=["Please sort out my settings.", "Can you change that for me?"],
        acks=[
            "Happy to help with your notification settings.",
            "Thanks for letting us know your notification preferences.",
        ],
        nexts=[
            "I've updated your notification settings as you asked, and you can "
            "fine-tune them any time under Account > Notifications.",
            "Your notification preferences are now updated, though messages that were "
            "already scheduled can take up to 48 hours to stop.",
        ],
    ),
]

INTENTS = {
    "billing": BILLING,
    "shipping": SHIPPING,
    "returns": RETURNS,
    "technical": TECHNICAL,
    "account": ACCOUNT,
}
