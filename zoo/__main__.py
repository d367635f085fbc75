from zoo.cli.main import run

run()
