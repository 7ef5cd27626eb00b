"""The word lists the grading rules read: negations, hedges, refusals, titles and qualifiers.

Folded forms (``core.scoring.text.fold_word``): "isn't" is "isnt". One list per rule, so a rule
is changed in one place and ``SCORER_VERSION`` records that it changed.
"""

from __future__ import annotations

NEGATORS = frozenset("not no never neither nor none nobody cannot nothing".split())
# two-word negations that scope over what follows: "instead of Paris", "rather than Paris"
NEGATING_PAIRS = frozenset({("instead", "of"), ("rather", "than"), ("other", "than"), ("except", "for")})
NEGATING_SINGLE = frozenset({"unlike", "except", "excluding", "besides"})
COPULAS = frozenset("is was are were be been does did do has had have".split())
# uncertainty: an answer that says it may be wrong is not knowledge (the brief: hedged = not known)
HEDGE_WORDS = frozenset("maybe perhaps possibly probably likely unlikely presumably unsure uncertain".split())
HEDGE_PHRASES = (
    ("i", "think"),
    ("i", "believe"),
    ("i", "suppose"),
    ("i", "guess"),
    ("im", "guessing"),
    ("i", "am", "guessing"),
    ("not", "sure"),
    ("not", "certain"),
    ("not", "100"),
    ("might", "be"),
    ("may", "be"),
    ("could", "be"),
    ("if", "i", "remember"),
    ("if", "i", "recall"),
    ("if", "im", "not", "mistaken"),
    ("it", "seems"),
    ("i", "would", "say"),
    ("id", "say"),
)
REFUSALS = (
    ("i", "dont", "know"),
    ("i", "do", "not", "know"),
    ("dont", "know"),
    ("no", "idea"),
    ("not", "known"),
    ("unknown",),
    ("cannot", "answer"),
    ("cant", "answer"),
    ("unable", "to"),
    ("no", "information"),
    ("not", "able", "to"),
    ("im", "sorry"),
    ("i", "am", "sorry"),
    ("no", "answer"),
    ("i", "have", "no"),
    ("idk",),
    ("no", "clue"),
    ("cant", "remember"),
    ("cannot", "remember"),
    ("dont", "remember"),
    ("cant", "recall"),
    ("cannot", "recall"),
    ("dont", "recall"),
    ("i", "dont", "have"),
    ("i", "do", "not", "have"),
)
# words that may stand before a name without making it another name ("President George Washington")
TITLES = frozenset(
    """
    president king queen prince princess sir dame lord lady saint st dr doctor mr mrs ms miss professor prof
    general gen admiral captain capt colonel col major emperor empress pope tsar czar sultan chancellor
    minister senator governor archbishop bishop cardinal reverend rev rabbi imam sheikh count countess duke
    duchess baron baroness marquis earl mount mt lake river cape fort port san santa
    """.split()
)
# titles that are places: before a person's name they make another name ("Mount McKinley")
PLACE_TITLES = frozenset("mount mt lake river cape fort port".split())
# words that may follow a name without making it another name ("New York City", "Oxford University")
QUALIFIERS = frozenset(
    """
    city county state province region district river island islands mountain mountains lake university
    college jr sr ii iii iv fc inc ltd corporation corp company co group band republic kingdom empire
    """.split()
)
# words that never start or extend a name: function words and the usual padding of an answer
STOP = frozenset(
    """
    a an the this that these those it its itself he she they them their his her hers i im me my we our
    you your there here thats whats whos which what who whom whose where when why how is was are were be
    been being am has have had do does did will would shall should can could may might must to of in on
    at by for from with within into onto upon about as than then so and or but nor not no yes yeah sure
    well also too very just only indeed actually definitely certainly clearly obviously of course oh ah
    um hmm answer correct right called named known located situated found lies born based near around
    approximately roughly some one capital city country said answer sure okay ok hello hi great
    """.split()
)
CLAUSE_BREAKS = frozenset(",;:.!?()[]—–")
CLAUSE_WORDS = frozenset({"but", "however", "although", "though", "whereas", "while", "yet"})
UNITS = {
    "metre": "m",
    "metres": "m",
    "meter": "m",
    "meters": "m",
    "m": "m",
    "kilometre": "km",
    "kilometres": "km",
    "kilometer": "km",
    "kilometers": "km",
    "km": "km",
    "centimetre": "cm",
    "centimetres": "cm",
    "centimeter": "cm",
    "centimeters": "cm",
    "cm": "cm",
    "mile": "mi",
    "miles": "mi",
    "mi": "mi",
    "foot": "ft",
    "feet": "ft",
    "ft": "ft",
    "inch": "in",
    "inches": "in",
    "kilogram": "kg",
    "kilograms": "kg",
    "kg": "kg",
    "gram": "g",
    "grams": "g",
    "pound": "lb",
    "pounds": "lb",
    "lb": "lb",
    "lbs": "lb",
    "tonne": "t",
    "tonnes": "t",
    "ton": "t",
    "tons": "t",
    "percent": "%",
    "per": "per",
    "year": "yr",
    "years": "yr",
    "day": "d",
    "days": "d",
    "hour": "h",
    "hours": "h",
    "minute": "min",
    "minutes": "min",
    "second": "s",
    "seconds": "s",
    "degrees": "deg",
    "degree": "deg",
    "celsius": "c",
    "fahrenheit": "f",
    "dollars": "usd",
    "dollar": "usd",
    "euros": "eur",
    "euro": "eur",
    "people": "people",
    "inhabitants": "people",
    "residents": "people",
    "members": "members",
    "km2": "km2",
    "litres": "l",
    "liters": "l",
    "litre": "l",
    "liter": "l",
}
