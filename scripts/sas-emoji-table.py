#!/usr/bin/env python3
"""Writes protocols/sas-emoji-v2.txt from the hand-picked list below, and checks it.

The list is the source of truth; this script only checks the rules of protocols/sas-v1.md
("Table versions") and writes the file in the v1 format. The checks that the tests repeat
(tests/sas_emoji_table.rs) are: 256 entries, distinct code points and names and head words,
single code points, at most one entry per look-alike group (protocols/sas-emoji-lookalikes.txt).
The checks only this script can make read the Unicode data files of the machine
(/usr/share/unicode, package unicode-data): default emoji presentation and an emoji version of 12.0
or lower, so that every font of the last years draws them.

Usage: python3 scripts/sas-emoji-table.py [--check]   (--check: compare, do not write)
"""

import re
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "protocols" / "sas-emoji-v2.txt"
LOOKALIKES = ROOT / "protocols" / "sas-emoji-lookalikes.txt"
EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
EMOJI_DATA = Path("/usr/share/unicode/emoji/emoji-data.txt")

# (code point, name): short, distinct, easy to say aloud; grouped roughly by kind.
PICKS = """
1F98D gorilla
1F415 dog
1F98A fox
1F408 cat
1F981 lion
1F983 turkey
1F40E horse
1F984 unicorn
1F993 zebra
1F98C deer
1F404 cow
1F416 pig
1F411 sheep
1F410 goat
1F42A camel
1F992 giraffe
1F418 elephant
1F98F rhino
1F401 mouse
1F407 rabbit
1F994 hedgehog
1F987 bat
1F43C panda
1F9A6 otter
1F9A8 skunk
1F998 kangaroo
1F414 chicken
1F426 bird
1F427 penguin
1F985 eagle
1F986 duck
1F989 owl
1F9A9 flamingo
1F99A peacock
1F99C parrot
1F438 frog
1F40A crocodile
1F422 turtle
1F40D snake
1F3AC clapper
1F40B whale
1F420 fish
1F419 octopus
1F41A shell
1F980 crab
1F40C snail
1F98B butterfly
1F41B caterpillar
1F41C ant
1F41D bee
1F41E ladybird
1F982 scorpion
1F338 blossom
1F339 rose
1F33B sunflower
1F340 clover
1F333 tree
1F334 palm
1F335 cactus
1F341 maple
1F344 mushroom
1F347 grapes
1F968 pretzel
1F349 watermelon
1F34B lemon
1F34D pineapple
1F34E apple
1F352 cherries
1F353 strawberry
1F95D kiwi
1F965 coconut
1F951 avocado
1F346 eggplant
1F954 potato
1F955 carrot
1F33D corn
1F952 cucumber
1F9C4 garlic
1F35E bread
1F950 croissant
1F95E pancakes
1F9C7 waffle
1F9C0 cheese
1F357 drumstick
1F354 burger
1F35F fries
1F355 pizza
1F32E taco
1F95A egg
1F37F popcorn
1F35B curry
1F35D spaghetti
1F363 sushi
1F368 ice cream
1F369 doughnut
1F36A cookie
1F382 cake
1F36B chocolate
1F36C candy
1F36D lollipop
1F36F honey
1F37C baby bottle
2615 coffee
1F37E champagne
1F377 wine
1F37A beer
1F4CB clipboard
1F944 spoon
1F30D globe
1F9ED compass
1F30B volcano
1F9F1 brick
1F3E0 house
1F3E5 hospital
1F3ED factory
1F3F0 castle
26EA church
1F5FD statue
26FA tent
26F2 fountain
1F488 barber pole
1F3A1 ferris wheel
1F3A2 roller coaster
1F682 train
1F68C bus
1F697 car
1F69C tractor
1F6F4 scooter
1F6B2 bicycle
1F6F9 skateboard
1F6A6 traffic light
1F6D1 stop sign
2693 anchor
26F5 sailboat
1F6F6 canoe
1F6A2 ship
1F6EB plane
1FA82 parachute
1F681 helicopter
1F680 rocket
1F6F8 ufo
1F9F3 suitcase
231B hourglass
23F0 alarm clock
1F319 moon
1FA90 planet
2B50 star
26C5 cloud
1F308 rainbow
2614 umbrella
26A1 lightning
26C4 snowman
1F525 fire
1F4A7 drop
1F30A wave
1F383 pumpkin
1F386 fireworks
1F388 balloon
1F380 ribbon
1F381 gift
1F3AB ticket
1F3C6 trophy
1F3C5 medal
26BD soccer
1F3C9 rugby
1F3C0 basketball
1F3B3 bowling
1F3D2 hockey
1F3D3 ping pong
1F94A boxing
26F3 golf
1F3BF skis
1F3AF target
1FA80 yo-yo
1FA81 kite
1F3B1 billiards
1F3AE gamepad
1F3B0 slot machine
1F3B2 dice
1F9E9 puzzle
1F0CF joker
1F3A8 palette
1F9F6 yarn
1F453 glasses
1F454 tie
1F455 shirt
1F456 jeans
1F9E3 scarf
1F9E4 gloves
1F9E5 coat
1F9E6 socks
1F457 dress
1F459 bikini
1F45C handbag
1F392 backpack
1F4E1 satellite
1F9EF extinguisher
1F460 high heel
1F451 crown
1F3A9 top hat
1F484 lipstick
1F48D ring
1F514 bell
1F3B5 note
1F3A4 microphone
1F3A7 headphones
1F4FB radio
1F3BA trumpet
1F3B8 guitar
1F3B9 piano
1F941 drum
1F4F1 phone
1F50B battery
1F50C plug
1F4BB laptop
1F4BE floppy
1F4BF cd
1F9EE abacus
1F4F7 camera
1F4FA tv
1F50D magnifier
1F4A1 bulb
1F526 flashlight
1F4D6 book
1F4DC scroll
1F4F0 newspaper
1F4B0 money bag
1F4B3 credit card
1F4E9 envelope
1F4E6 parcel
1F4EB mailbox
1F4C5 calendar
1F4CC pushpin
1F4CE paperclip
1F4CF ruler
1F512 lock
1F511 key
1F528 hammer
1F527 wrench
1F517 chain
1F9F2 magnet
1F9EA test tube
1F9EC dna
1F52C microscope
1F489 syringe
1F48A pill
1FA79 bandage
1FA7A stethoscope
1F6AA door
1FA91 chair
1F6BF shower
1F6C1 bathtub
1FA92 razor
1F9F9 broom
1F9FA basket
1F9FD sponge
"""


def picks():
    out = []
    for line in PICKS.strip().splitlines():
        cp, name = line.split(" ", 1)
        out.append((int(cp, 16), name))
    return out


def lookalike_groups():
    groups = []
    for line in LOOKALIKES.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, cps = line.split("\t")
        groups.append((name, {int(c[2:], 16) for c in cps.split()}))
    return groups


def emoji_versions():
    """Code point -> emoji version, for fully-qualified single code points."""
    versions = {}
    for line in EMOJI_TEST.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or ";" not in line:
            continue
        cps, rest = line.split(";", 1)
        cps = cps.split()
        m = re.search(r"# \S+ E(\d+\.\d+) ", rest)
        if len(cps) == 1 and "fully-qualified" in rest and m:
            versions[int(cps[0], 16)] = float(m.group(1))
    return versions


def emoji_presentation():
    out = set()
    for line in EMOJI_DATA.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if not line or "Emoji_Presentation" not in line:
            continue
        r = line.split(";")[0].strip()
        lo, _, hi = r.partition("..")
        out.update(range(int(lo, 16), int(hi or lo, 16) + 1))
    return out


def check(entries):
    problems = []
    if len(entries) != 256:
        problems.append(f"{len(entries)} entries, not 256")
    cps = [cp for cp, _ in entries]
    names = [n for _, n in entries]
    heads = [n.split()[-1] for n in names]
    for what, values in (("code point", cps), ("name", names), ("head word", heads)):
        seen = set()
        for v in values:
            if v in seen:
                problems.append(f"duplicate {what}: {v}")
            seen.add(v)
    for cp, name in entries:
        if not re.fullmatch(r"[a-z][a-z-]*( [a-z-]+)?", name) or len(name) > 14:
            problems.append(f"name {name!r}: one or two lower-case words, at most 14 characters")
    versions, presentation = emoji_versions(), emoji_presentation()
    for cp, name in entries:
        if cp not in presentation:
            problems.append(f"U+{cp:04X} {name}: no default emoji presentation")
        if versions.get(cp, 99.0) > 12.0:
            problems.append(f"U+{cp:04X} {name}: emoji version {versions.get(cp)} (want <= 12.0)")
    chosen = set(cps)
    for group, members in lookalike_groups():
        both = sorted(members & chosen)
        if len(both) > 1:
            problems.append(f"look-alike group {group!r} has " + ", ".join(f"U+{c:04X}" for c in both))
    return problems


def render(entries):
    head = (
        "# hail SAS emoji table, version 2 (protocols/sas-v1.md, \"Table versions\").\n"
        "# One line per index 0..255: index, code point, emoji, English name, separated by tabs.\n"
        "# At most one emoji of each look-alike group (sas-emoji-lookalikes.txt); names are short and\n"
        "# share no head word. Written by scripts/sas-emoji-table.py. Versioned, never edited in place.\n"
    )
    lines = [f"{i}\tU+{cp:04X}\t{chr(cp)}\t{name}" for i, (cp, name) in enumerate(entries)]
    return head + "\n".join(lines) + "\n"


def main():
    entries = picks()
    problems = check(entries)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        sys.exit(1)
    text = render(entries)
    if "--check" in sys.argv:
        if OUT.read_text(encoding="utf-8") != text:
            sys.exit(f"{OUT} differs from what the script writes")
        print("ok")
        return
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} (256 entries)")


if __name__ == "__main__":
    main()
