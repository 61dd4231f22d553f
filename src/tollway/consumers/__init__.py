"""Consumers: their one shape (``consumer``), runtime consumers kept in the database
(``store``, keys hashed by ``keys``) and served from memory in every process
(``directory``)."""
