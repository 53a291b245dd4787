"""The tiny multiple-choice benchmark bundled with the sample crawl (authored for this project)."""

from __future__ import annotations

BENCHMARK_NAME = "sample_qa"

# (question, choices, index of the correct choice)
ITEMS: list[tuple[str, list[str], int]] = [
    ("A gardener notices that the leaves of her tomato plants turn yellow from the bottom up while the top stays green; which nutrient deficiency is the most likely cause of this pattern?",
     ["Nitrogen", "Calcium", "Iron", "Boron"], 0),
    ("When water is heated at sea level in an open pot, at approximately what temperature in degrees Celsius does it begin to boil under normal atmospheric pressure?",
     ["80", "90", "100", "120"], 2),
    ("Which of the following planets in our solar system takes the longest time to complete a single orbit around the Sun, measured in Earth years?",
     ["Mars", "Jupiter", "Saturn", "Neptune"], 3),
    ("A bread recipe asks the baker to let the dough rest in a warm place until it doubles in size; which living organism is mainly responsible for this rise?",
     ["Yeast", "Lactobacillus", "Mould", "Algae"], 0),
    ("In a simple household electrical circuit, which quantity is measured in ohms and describes how strongly a material opposes the flow of electric current?",
     ["Voltage", "Resistance", "Power", "Capacitance"], 1),
    ("Which gas, released by plants during photosynthesis when sunlight is converted into chemical energy, makes up roughly one fifth of the air that people breathe?",
     ["Nitrogen", "Carbon dioxide", "Oxygen", "Argon"], 2),
    ("A traveller flying east from London to Tokyo crosses several time zones; compared with the clock in London, local time in Tokyo is usually how many hours ahead?",
     ["Three", "Six", "Nine", "Twelve"], 2),
    ("Historians often describe the printing press with movable metal type as a turning point in European history; in which century did Johannes Gutenberg introduce it?",
     ["Thirteenth", "Fifteenth", "Seventeenth", "Eighteenth"], 1),
    ("If a savings account pays five percent simple interest per year on a deposit of two hundred pounds, how much interest will the saver earn after three full years?",
     ["Ten pounds", "Fifteen pounds", "Thirty pounds", "Sixty pounds"], 2),
    ("Which organ of the human body is chiefly responsible for filtering waste products from the blood and producing urine, and is usually found as a pair?",
     ["Liver", "Kidney", "Spleen", "Pancreas"], 1),
    ("A programmer stores items so that the most recently added item is always the first one removed; which classic data structure follows this last in first out rule?",
     ["Queue", "Stack", "Heap", "Linked list"], 1),
    ("In music notation, how many beats does a whole note usually last in a piece written in common time, which has four quarter-note beats in every bar?",
     ["One", "Two", "Three", "Four"], 3),
    ("Which layer of the atmosphere, lying above the troposphere and containing most of the ozone that absorbs ultraviolet radiation from the Sun, is named here?",
     ["Mesosphere", "Stratosphere", "Thermosphere", "Exosphere"], 1),
    ("A football match is played between two teams with eleven players each on the pitch; how many players in total are on the field at the start of play?",
     ["Eighteen", "Twenty", "Twenty-two", "Twenty-four"], 2),
    ("Which ancient wonder of the world, built as a tomb for an Egyptian pharaoh near modern Cairo, is the only one of the seven that still largely stands today?",
     ["The Hanging Gardens", "The Colossus of Rhodes", "The Great Pyramid of Giza", "The Lighthouse of Alexandria"], 2),
    ("When a cook adds salt to a pot of water before boiling pasta, what happens to the boiling point of the water compared with pure water at the same pressure?",
     ["It rises slightly", "It falls sharply", "It stays exactly the same", "It falls slightly"], 0),
    ("Which instrument would a weather station use to measure atmospheric pressure, a reading that forecasters watch closely because falling values often signal an approaching storm?",
     ["Thermometer", "Hygrometer", "Barometer", "Anemometer"], 2),
    ("A student reads that light travels faster than sound; during a thunderstorm, why do people usually see the lightning flash before they hear the thunder that it produces?",
     ["Light is faster than sound", "Thunder happens later", "Sound is absorbed by rain", "Eyes react faster than ears"], 0),
    ("Which process describes the way rocks at the surface of the Earth are slowly broken into smaller pieces by wind, water, ice and changes in temperature over time?",
     ["Erosion", "Weathering", "Sedimentation", "Subduction"], 1),
    ("In a healthy adult human at rest, roughly how many times does the heart beat in one minute, a figure that doctors often record during a routine check-up?",
     ["Twenty to forty", "Sixty to one hundred", "One hundred and fifty to two hundred", "Two hundred to two hundred and fifty"], 1),
]
