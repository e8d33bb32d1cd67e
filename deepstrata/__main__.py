from deepstrata.cli import main

main()
