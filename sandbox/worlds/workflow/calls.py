"""Support calls: what a call is about (`CallSpec`) and how its transcript is written.

A transcript is drawn from the seed out of line templates. Each line carries its cue words
(the scripted agent's extractor relies on them) and no cue of any other field, so the ground
truth of the extract stage is exactly the `CallSpec` the transcript was written from.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trialrun.sandbox.worlds.workflow.policy import PRODUCTS

INTENTS = ("billing_dispute", "outage", "cancel", "upgrade", "tech_support")
SENTIMENTS = ("positive", "neutral", "negative", "angry")
COMMITMENTS = ("callback", "replacement", "technician_visit", "email_summary")

Intent = Literal["billing_dispute", "outage", "cancel", "upgrade", "tech_support"]
Product = Literal["fiber", "mobile", "tv", "landline"]
Commitment = Literal["callback", "replacement", "technician_visit", "email_summary"]


class CallSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intent: Intent
    products: list[Product] = Field(min_length=1, max_length=2)
    sentiment: Literal["positive", "neutral", "negative", "angry"] = "neutral"
    commitments: list[Commitment] = Field(default_factory=list)


def draw_call(rng: random.Random, max_products: int,
              intents: list[str] | None = None) -> CallSpec:
    """A call drawn from the seed (for tasks that do not give one, and for generated tasks)."""
    return CallSpec(
        intent=rng.choice(intents or list(INTENTS)),
        products=rng.sample(sorted(PRODUCTS), rng.randint(1, max_products)),
        sentiment=rng.choice(SENTIMENTS),
        commitments=sorted(rng.sample(COMMITMENTS, rng.randint(0, 2))))


REPS = ["Jamie", "Morgan", "Riley", "Casey", "Avery"]
PRODUCT_WORDS = {"fiber": "fiber internet", "mobile": "mobile plan", "tv": "TV package",
                 "landline": "landline"}
OPEN = ["Thank you for calling {company}, this is {rep}. How can I help you today?",
        "{company} support, {rep} speaking. What can I do for you?"]
IDENT = ["Hi, this is {name}.", "Hello, my name is {name}."]
ASK_ID = ["Can you confirm the last four digits of the phone number on the account?",
          "For security, what are the last four digits of the account phone number?"]
GIVE_ID = ["Sure, it's {last4}.", "It's {last4}."]
INTENT_LINES = {
    "billing_dispute": ["I was charged twice for my {products} this month.",
                        "My bill shows a double charge for my {products}."],
    "outage": ["My {products} has been down since yesterday.",
               "There has been an outage on my {products} for two days."],
    "cancel": ["I want to cancel my {products}.",
               "I'm thinking of cancelling my {products} and going elsewhere."],
    "upgrade": ["I'd like to upgrade my {products} to something faster.",
                "Can I upgrade my {products}?"],
    "tech_support": ["I need help setting up my {products}.",
                     "I can't configure my {products} properly."],
}
SENTIMENT_LINES = {
    "angry": ["This is completely unacceptable.", "I'm furious, this keeps happening."],
    "negative": ["Honestly, I'm pretty disappointed.", "This is really frustrating."],
    "neutral": ["Okay.", "Alright."],
    "positive": ["I appreciate the quick help.", "That's wonderful, thank you."],
}
ACK = ["Let me look into that for you.", "I understand, let me check your account."]
COMMIT_LINES = {
    "callback": ["I'll arrange a callback for tomorrow.", "Someone will call you back tomorrow."],
    "replacement": ["I'll send you a replacement device.", "We'll ship a replacement router."],
    "technician_visit": ["I'll book a technician to visit.",
                         "A technician will come by on Thursday."],
    "email_summary": ["I'll email you a summary of this call.",
                      "You'll get a summary by email."],
}
SMALL_TALK = ["Sorry, my dog is barking in the background.", "The weather has been awful.",
              "I'm calling from the car, so bear with me.", "I've had a long day."]
DISTRACTOR = ["My {product} is fine, by the way.", "The {product} works fine."]
CLOSE = ["Is there anything else I can help with?", "Anything else today?"]
BYE = ["No, that's all. Bye.", "That's it, bye."]


def write_transcript(rng: random.Random, call: CallSpec, *, company: str, name: str,
                     last4: str, owned: list[str], small_talk: int, distractors: int) -> str:
    """The transcript of `call` from the caller `name` (phone ending `last4`), who owns the
    products `owned`: `distractors` lines about owned products that are fine, `small_talk`
    filler lines inserted at random."""
    rep = rng.choice(REPS)
    products = " and ".join(PRODUCT_WORDS[p] for p in call.products)
    fine = [p for p in owned if p not in call.products]
    lines = [("Rep", rng.choice(OPEN).format(company=company, rep=rep)),
             ("Customer", rng.choice(IDENT).format(name=name)),
             ("Rep", rng.choice(ASK_ID)),
             ("Customer", rng.choice(GIVE_ID).format(last4=last4)),
             ("Customer", rng.choice(INTENT_LINES[call.intent]).format(products=products))]
    for _ in range(min(distractors, len(fine))):
        product = fine.pop(rng.randrange(len(fine)))
        lines.append(("Customer", rng.choice(DISTRACTOR).format(
            product=PRODUCT_WORDS[product])))
    for _ in range(small_talk):
        lines.insert(rng.randint(2, len(lines)), ("Customer", rng.choice(SMALL_TALK)))
    lines.append(("Customer", rng.choice(SENTIMENT_LINES[call.sentiment])))
    lines.append(("Rep", rng.choice(ACK)))
    for c in sorted(set(call.commitments)):
        lines.append(("Rep", rng.choice(COMMIT_LINES[c])))
    lines += [("Rep", rng.choice(CLOSE)), ("Customer", rng.choice(BYE))]
    return "\n".join(f"{who}: {text}" for who, text in lines)
