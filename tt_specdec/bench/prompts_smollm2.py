"""Held-out evaluation prompts for the SmolLM2 pair: 24 (category, prompt), 6 per category.

Handwritten for this purpose, not drawn from the draft's training sources (the stdlib
docstrings and sources, pydoc topics, Debian fortunes, the templated chat questions of
tools/distill_smollm2.py); the distillation recipe drops any training prompt that shares
word 5-grams with these or asks about their topics. The bench and the acceptance reports
use them as user messages rendered with the target's chat template.
"""
from __future__ import annotations

CATEGORIES = ("chat", "code", "prose", "summarisation")

PROMPTS: list[tuple[str, str]] = [
    # chat
    ("chat", "I'm visiting Lisbon for three days in March. What should I pack and what should I see?"),
    ("chat", "My sourdough starter smells like nail polish remover. Is it ruined, and what can I do?"),
    ("chat", "How do I politely tell a coworker that their loud phone calls are distracting me?"),
    ("chat", "What are the pros and cons of buying an electric bicycle for a 12 km commute?"),
    ("chat", "Can you suggest a weekly routine for learning to play the ukulele as an adult beginner?"),
    ("chat", "Why do cats knock things off tables?"),
    # code
    ("code", "Write a Python function that merges two sorted lists into one sorted list without using sort()."),
    ("code", "Write a Python class for a stack with push, pop, peek and is_empty methods, with docstrings."),
    ("code", "Explain what this does and fix any bug:\n\ndef average(xs):\n    total = 0\n"
             "    for x in xs:\n        total += x\n    return total / len(xs) + 1"),
    ("code", "Write a bash one-liner that counts the lines of every .csv file in a directory, largest first."),
    ("code", "Write a Python function is_palindrome(s) that ignores case, spaces and punctuation, with three tests."),
    ("code", "Write a SQL query that returns the five customers with the highest total order value from tables "
             "customers(id, name) and orders(id, customer_id, amount)."),
    # prose
    ("prose", "Write a short story about a lighthouse keeper who finds a message in a glass jar."),
    ("prose", "Describe a rainy afternoon in a busy train station, in the present tense."),
    ("prose", "Write a four-line poem about autumn leaves and a bicycle."),
    ("prose", "Write the opening paragraph of a mystery novel set in a mountain village during a snowstorm."),
    ("prose", "Write a friendly letter from a grandmother to her grandson who just started university."),
    ("prose", "Write a product description for a handmade wooden chess set."),
    # summarisation
    ("summarisation", "Summarize in two sentences: The city council met on Tuesday to discuss the proposed bus "
     "lane on Harbour Street. Shop owners argued that removing forty parking spaces would hurt their business, "
     "while cyclists and commuters said the street is dangerous and buses are always late. After three hours of "
     "debate the council voted to run a six-month trial and to publish traffic and sales figures every month."),
    ("summarisation", "Summarize the main idea: Honeybees communicate the location of food with a waggle dance. "
     "The angle of the dance relative to vertical shows the direction of the food relative to the sun, and the "
     "length of the waggle run shows the distance. Other bees follow the dancer, learn the route, and fly out to "
     "the flowers themselves."),
    ("summarisation", "Give a one-sentence summary: Our quarterly report shows revenue up 8 percent, driven "
     "by strong sales of the new thermostat, but costs rose 12 percent because of higher shipping prices and two "
     "new warehouses. Management expects margins to recover next year as the warehouses reduce delivery times."),
    ("summarisation", "Summarize this email for a busy manager: Hi team, the server migration planned for "
     "Friday is moved to next Wednesday because the backup tests failed twice. Please do not deploy anything "
     "after Monday noon. Sara will rerun the tests on Tuesday and send a go/no-go message by 5 pm. Thanks, Omar."),
    ("summarisation", "Summarize in three bullet points: Regular walking lowers blood pressure, improves "
     "sleep and mood, and helps control weight. Experts recommend about 150 minutes of moderate activity per "
     "week. Walking needs no equipment beyond comfortable shoes, and short walks after meals also help keep "
     "blood sugar steady."),
    ("summarisation", "Summarize: The expedition reached the glacier on the fourth day. Heavy fog slowed the "
     "climb, and one of the sledges broke a runner, so the team camped early. The next morning the sky cleared, "
     "they repaired the sledge with spare rope, and they collected ice cores from three sites before returning "
     "to base."),
]

assert len(PROMPTS) == 24 and all(c in CATEGORIES for c, _ in PROMPTS)


def select(prompts: list[tuple[str, str]], n: int | None = None,
           categories: list[str] | None = None) -> list[tuple[str, str]]:
    """The first `n` of `prompts` in the given categories, taken round-robin over the categories
    (chat, code, prose, summarisation, chat, ...) so that a short run still covers each one."""
    known = list(dict.fromkeys(c for c, _ in prompts))
    wanted = known if categories is None else list(categories)
    unknown = [c for c in wanted if c not in known]
    if unknown or not wanted:
        raise ValueError(f"categories: got {wanted!r}, expected a non-empty subset of {known}")
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"n: got {n!r}, expected an int >= 1 (or None: all)")
    queues = [[p for p in prompts if p[0] == c] for c in wanted]
    order = [q[i] for i in range(max(map(len, queues))) for q in queues if i < len(q)]
    return order[:n]
