"""The Finnish and Swedish text analysis that the compilation and the suggested cells use:
words and their lemmas and compound parts (Voikko for Finnish, Snowball for Swedish), word
vectors (the floret vectors of spaCy's Finnish model), and how alike two findings are.
Nothing else in hytetu tokenises text its own way.
"""

from hytetu.language.analysis import Token, analyse, analyser_name, detect_language
from hytetu.language.similarity import Matcher

__all__ = ["Matcher", "Token", "analyse", "analyser_name", "detect_language"]
