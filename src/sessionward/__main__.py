from sessionward.cli import main

main()
