"""What the tests share and that is not a test: the fixture servers on loopback, one way
to run the command line, helpers the tests build their cases from, and the paths of the
tree. Test modules import from here, never from one another or from a conftest."""
