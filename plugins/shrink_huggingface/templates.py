"""Short everyday sentences generated from templates over a small vocabulary (no third-party text).

A training source for the `text` dataset in a register the documentation sources lack: requests,
questions and remarks about home, travel, food, work, health, weather and people. Generation is seeded
and sorted, so the same `count` and `seed` give the same sentences. It never reads the held-out
`requests.txt`; the dataset drops any generated sentence that happens to equal a held-out one.
"""

from __future__ import annotations

import random
import re

SLOTS: dict[str, tuple[str, ...]] = {
    "device": ("the lights", "the fan", "the radio", "the television", "the heater", "the dishwasher", "the oven",
               "the porch light", "the air conditioner", "the coffee machine", "the washing machine", "the speaker"),
    "room": ("the kitchen", "the bedroom", "the living room", "the hallway", "the garage", "the office", "the basement",
             "the bathroom", "the garden", "the attic", "the nursery", "the dining room"),
    "person": ("Anna", "my brother", "my sister", "Dad", "Mom", "the landlord", "my boss", "Priya", "Tom", "the doctor",
               "Grandma", "my neighbour", "Luis", "the plumber", "Kenji", "my teacher", "the babysitter", "Omar"),
    "time": ("at seven", "in ten minutes", "tomorrow morning", "tonight", "on Friday", "next Tuesday", "after lunch",
             "before noon", "at half past four", "this evening", "in an hour", "on the weekend", "at dawn", "next month"),
    "place": ("the library", "the station", "the bakery", "the hospital", "the beach", "the museum", "the office",
              "the post office", "the park", "the stadium", "the hotel", "the market", "the school", "the bank",
              "the cinema", "the harbour", "the bus stop", "the gym"),
    "food": ("pasta", "soup", "rice", "pancakes", "a salad", "curry", "bread", "cookies", "chicken", "tacos", "noodles",
             "lemonade", "an omelette", "pizza", "porridge", "dumplings"),
    "item": ("milk", "batteries", "apples", "shampoo", "a birthday card", "coffee", "paper towels", "dog food",
             "light bulbs", "tomatoes", "a phone charger", "cheese", "toothpaste", "onions", "envelopes", "flowers"),
    "thing": ("my keys", "my wallet", "the umbrella", "the remote", "my glasses", "the tickets", "the charger",
              "my passport", "the receipt", "my notebook", "the spare key", "my headphones"),
    "event": ("the meeting", "the dentist appointment", "the flight", "the concert", "the party", "the interview",
              "the football match", "the yoga class", "the school play", "the dinner reservation", "the train",
              "the video call"),
    "music": ("jazz", "something calm", "the news", "classical music", "my workout playlist", "a podcast",
              "the radio", "some old songs", "rain sounds", "the latest album"),
    "adjective": ("cold", "noisy", "late", "tired", "busy", "hungry", "quiet", "bright", "expensive", "crowded",
                  "warm", "slow", "early", "sunny", "windy", "boring"),
    "weather": ("rain", "snow", "a storm", "fog", "sunshine", "strong wind", "a heat wave", "frost"),
    "number": ("two", "three", "four", "five", "six", "ten", "twelve", "fifteen", "twenty", "thirty"),
    "unit": ("minutes", "hours", "days", "kilometres", "degrees", "euros", "pages", "people"),
    "activity": ("go for a run", "clean the windows", "walk the dog", "pay the rent", "call the bank", "buy stamps",
                 "pick up the kids", "book the hotel", "renew my licence", "water the plants", "back up my photos",
                 "return the library books", "feed the cat", "take my medicine", "finish the report"),
    "topic": ("the election", "climate change", "the housing market", "electric cars", "the new bridge",
              "the local team", "space travel", "the school holidays", "public transport", "the museum exhibition"),
}

TEMPLATES: tuple[str, ...] = (
    "Turn on {device} in {room}.", "Switch off {device} {time}.", "Please dim {device} in {room}.",
    "Could you turn {device} back on {time}?", "Is {device} in {room} still on?",
    "Remind me to {activity} {time}.", "Set a reminder to {activity} {time}.", "Don't let me forget to {activity}.",
    "I have to {activity} {time}.", "Did I {activity} yesterday?",
    "Call {person} {time}.", "Send {person} a message that I am running late.", "Tell {person} I will be there {time}.",
    "When did {person} last call me?", "Ask {person} whether {event} is still on.",
    "How do I get to {place} from here?", "How far is {place} by bike?", "Find the quickest route to {place}.",
    "Is {place} open {time}?", "What time does {place} close {time}?", "Take me to {place}.",
    "Add {item} to the shopping list.", "Do we still have {item} at home?", "Order {item} for delivery {time}.",
    "Where can I buy {item} near {place}?", "Remove {item} from my list.",
    "How long should I cook {food}?", "Find a quick recipe for {food}.", "What goes well with {food}?",
    "Let's have {food} for dinner {time}.", "I am too {adjective} to make {food} tonight.",
    "Where did I leave {thing}?", "Help me find {thing}.", "I think I lost {thing} at {place}.",
    "Is {event} still happening {time}?", "Move {event} to {time}.", "Cancel {event} please.",
    "What time is {event}?", "How long will {event} take?", "Put {event} on my calendar for {time}.",
    "Play {music} in {room}.", "Turn the volume down a little.", "Skip this song and play {music}.",
    "Stop the music {time}.", "Can you play {music} while I cook?",
    "Will there be {weather} {time}?", "Should I take an umbrella {time}?", "Is it going to be {adjective} {time}?",
    "How warm will it be at {place} {time}?", "There is {weather} coming {time}.",
    "Set a timer for {number} {unit}.", "Convert {number} {unit} into something I understand.",
    "What is {number} times {number}?", "Wake me up {time}.", "Snooze the alarm for {number} minutes.",
    "Read me the latest news about {topic}.", "What do people think about {topic}?", "Tell me something about {topic}.",
    "I read an article about {topic} this morning.", "Explain {topic} in simple words.",
    "The train was {adjective} again today.", "My room is too {adjective} to sleep.", "It was very {adjective} at {place}.",
    "I feel {adjective} after {event}.", "The new café near {place} is really {adjective}.",
    "We should meet at {place} {time}.", "Let's invite {person} to {event}.", "I met {person} at {place} {time}.",
    "Thanks for reminding me about {event}.", "Sorry, I missed {event} because I was {adjective}.",
    "Who is coming to {event} {time}?", "Why is {place} so {adjective} today?", "Which bus goes to {place}?",
    "How much does a ticket to {place} cost?", "Can I bring {item} to {event}?",
)

_SLOT = re.compile(r"\{(\w+)\}")


def fill(template: str, rng: random.Random) -> str:
    """One sentence from `template`, each slot drawn from its vocabulary; the first letter capitalised."""
    text = _SLOT.sub(lambda m: rng.choice(SLOTS[m.group(1)]), template)
    return text[0].upper() + text[1:]


def generate(count: int, seed: int = 0) -> list[str]:
    """`count` distinct sentences (fewer if the templates cannot make that many), templates in turn."""
    rng = random.Random(seed)
    found: dict[str, None] = {}
    attempts = 0
    while len(found) < count and attempts < count * 20:
        found.setdefault(fill(TEMPLATES[attempts % len(TEMPLATES)], rng), None)
        attempts += 1
    return list(found)
